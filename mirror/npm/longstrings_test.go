package npm

import (
	"encoding/json"
	"io"
	"strings"
	"testing"
)

// Long strings are cut out (their place in the source recorded), short
// ones and escapes pass unchanged, and the result is still JSON.
func TestLongStrings(t *testing.T) {
	long := strings.Repeat("QUJD", 100)
	src := `{"a":"short \"q\" \\","b":"` + long + `","c":["x","` + long + `"]}`
	ls := newLongStrings(strings.NewReader(src), 16)
	out, err := io.ReadAll(ls)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		A string   `json:"a"`
		B string   `json:"b"`
		C []string `json:"c"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if doc.A != `short "q" \` {
		t.Errorf("short string: %q", doc.A)
	}
	for _, v := range []string{doc.B, doc.C[1]} {
		s, ok := ls.long(v)
		if !ok || src[s.Offset:s.Offset+s.Length] != long {
			t.Errorf("%q: %v %v", v, s, ok)
		}
	}
	if _, err := io.ReadAll(newLongStrings(strings.NewReader(`{"a":"unterminated`), 4)); err == nil {
		t.Error("an unterminated string was accepted")
	}
}
