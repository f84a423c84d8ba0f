package osv

import (
	"math"
	"strings"
)

// cvss3Score is the base score of a CVSS v3.0 or v3.1 vector
// ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"), by the specification's
// formula; ok is false for anything else.
func cvss3Score(vector string) (float64, bool) {
	parts := strings.Split(vector, "/")
	if len(parts) < 9 || (parts[0] != "CVSS:3.1" && parts[0] != "CVSS:3.0") {
		return 0, false
	}
	m := map[string]string{}
	for _, p := range parts[1:] {
		k, v, ok := strings.Cut(p, ":")
		if !ok {
			return 0, false
		}
		m[k] = v
	}
	weights := map[string]map[string]float64{
		"AV": {"N": 0.85, "A": 0.62, "L": 0.55, "P": 0.2},
		"AC": {"L": 0.77, "H": 0.44},
		"UI": {"N": 0.85, "R": 0.62},
		"C":  {"H": 0.56, "L": 0.22, "N": 0},
		"I":  {"H": 0.56, "L": 0.22, "N": 0},
		"A":  {"H": 0.56, "L": 0.22, "N": 0},
	}
	get := func(k string) (float64, bool) { w, ok := weights[k][m[k]]; return w, ok }
	scope := m["S"]
	if scope != "U" && scope != "C" {
		return 0, false
	}
	pr := map[string]float64{"N": 0.85, "L": 0.62, "H": 0.27}
	if scope == "C" {
		pr = map[string]float64{"N": 0.85, "L": 0.68, "H": 0.5}
	}
	prw, ok := pr[m["PR"]]
	if !ok {
		return 0, false
	}
	var w [6]float64
	for i, k := range []string{"AV", "AC", "UI", "C", "I", "A"} {
		if w[i], ok = get(k); !ok {
			return 0, false
		}
	}
	iss := 1 - (1-w[3])*(1-w[4])*(1-w[5])
	var impact float64
	if scope == "U" {
		impact = 6.42 * iss
	} else {
		impact = 7.52*(iss-0.029) - 3.25*math.Pow(iss-0.02, 15)
	}
	exploit := 8.22 * w[0] * w[1] * prw * w[2]
	if impact <= 0 {
		return 0, true
	}
	if scope == "U" {
		return roundUp(math.Min(impact+exploit, 10)), true
	}
	return roundUp(math.Min(1.08*(impact+exploit), 10)), true
}

// roundUp is CVSS v3.1's Roundup: the smallest number of one decimal at
// least x.
func roundUp(x float64) float64 {
	i := int64(math.Round(x * 100000))
	if i%10000 == 0 {
		return float64(i) / 100000
	}
	return float64(i/10000+1) / 10
}
