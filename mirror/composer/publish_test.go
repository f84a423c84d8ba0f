package composer_test

import (
	"archive/zip"
	"bytes"
	"crypto/sha1"
	"encoding/hex"
	"mime/multipart"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/mirror-proxy/mirror-proxy/mirror/composer"
	"github.com/mirror-proxy/mirror-proxy/mirror/mirrortest"
	"github.com/mirror-proxy/mirror-proxy/proxy"
)

func libZip(t *testing.T, extra string) []byte {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, _ := zw.Create("composer.json")
	w.Write([]byte(`{"name":"acme/lib","description":"` + extra + `"}`))
	zw.Close()
	return buf.Bytes()
}

func upload(t *testing.T, method, url string, zipBytes []byte) (int, string) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	if zipBytes != nil {
		w, _ := mw.CreateFormFile("package", "package.zip")
		w.Write(zipBytes)
	}
	mw.Close()
	req, _ := http.NewRequest(method, url, &buf)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Authorization", "Bearer "+mirrortest.WriteToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b := new(bytes.Buffer)
	b.ReadFrom(resp.Body)
	return resp.StatusCode, b.String()
}

// The dist the p2 file gives for version, and whether its bytes match
// the p2 file's shasum.
func servedMatches(t *testing.T, base, version string) bool {
	code, _, body, _ := mirrortest.Get(t, base+"/p2/acme/lib.json")
	vs, err := composer.Expand(body, "acme/lib")
	if code != 200 || err != nil {
		t.Fatalf("p2: %d %v", code, err)
	}
	for _, v := range vs {
		if v["version"] != version {
			continue
		}
		d := v["dist"].(map[string]any)
		_, _, zb, _ := mirrortest.Get(t, strings.TrimSuffix(base, "/m")+d["url"].(string))
		s := sha1.Sum(zb)
		return d["shasum"] == hex.EncodeToString(s[:])
	}
	t.Fatalf("%s is not in the p2 file", version)
	return false
}

// A version is never published again with another zip, not even after
// DELETE (a tombstone); the same zip again while it is live succeeds.
func TestPublishedVersionsAreImmutable(t *testing.T) {
	base := mirrortest.Serve(t, proxy.Mirror{Name: "m", Type: "composer", Hosted: true})
	url := base + "/packages/upload/acme/lib/1.0.0"
	a, b := libZip(t, "a"), libZip(t, "b")
	if code, body := upload(t, http.MethodPut, url, a); code != 201 {
		t.Fatalf("publish: %d %s", code, body)
	}
	if code, body := upload(t, http.MethodPut, url, a); code/100 != 2 {
		t.Errorf("the same zip again: %d %s, want success", code, body)
	}
	if code, body := upload(t, http.MethodPut, url, b); code != 409 {
		t.Errorf("another zip: %d %s, want 409", code, body)
	}
	if code, body := upload(t, http.MethodDelete, url, nil); code != 200 {
		t.Fatalf("delete: %d %s", code, body)
	}
	for _, z := range [][]byte{a, b} {
		if code, body := upload(t, http.MethodPut, url, z); code != 409 || !strings.Contains(body, "deleted") {
			t.Errorf("publish after delete: %d %s, want 409", code, body)
		}
	}
}

// 30 racing publishes of one version with other zips: one wins, 29 get a
// 409 naming the conflict, and the p2 file's shasum is the stored zip's.
func TestRacingPublishesOneWins(t *testing.T) {
	base := mirrortest.Serve(t, proxy.Mirror{Name: "m", Type: "composer", Hosted: true})
	var mu sync.Mutex
	codes := map[int]int{}
	var wg sync.WaitGroup
	for i := range 30 {
		wg.Go(func() {
			code, body := upload(t, http.MethodPut, base+"/packages/upload/acme/lib/1.0.0", libZip(t, strings.Repeat("x", i)))
			if code == 409 && !strings.Contains(body, "published already") {
				t.Errorf("409 without naming the conflict: %s", body)
			}
			mu.Lock()
			codes[code]++
			mu.Unlock()
		})
	}
	wg.Wait()
	if codes[201] != 1 || codes[409] != 29 {
		t.Errorf("codes %v, want one 201 and 29 409", codes)
	}
	if !servedMatches(t, base, "1.0.0") {
		t.Error("the served zip does not match the p2 file's shasum")
	}
}
