package nix_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mirror-proxy/mirror-proxy/internal/fakenix"
	"github.com/mirror-proxy/mirror-proxy/mirror/mirrortest"
	"github.com/mirror-proxy/mirror-proxy/mirror/nix"
	"github.com/mirror-proxy/mirror-proxy/proxy"
	"github.com/mirror-proxy/mirror-proxy/storage"
	"github.com/mirror-proxy/mirror-proxy/storage/local"
)

// narURL is the NAR URL a narinfo gives.
func narURL(info []byte) string {
	for _, l := range strings.Split(string(info), "\n") {
		if u, ok := strings.CutPrefix(l, "URL: "); ok {
			return u
		}
	}
	return ""
}

// An upstream narinfo for path P whose URL and FileHash name Q's NAR (its
// NarHash is P's): the NAR fails the NarHash check, nothing is stored, the
// narinfo is dropped, and once the upstream repairs the narinfo P is
// served, verified.
func TestNarinfoWhoseNarDoesNotMatchIsNeverKept(t *testing.T) {
	up := fakenix.New()
	if err := up.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer up.Stop()
	narP, narQ := bytes.Repeat([]byte("P"), 3000), bytes.Repeat([]byte("Q"), 2000)
	hashP, fileP := up.Add("p", narP)
	_, fileQ := up.Add("q", narQ)
	good := up.File(hashP + ".narinfo")
	sumP, sumQ := sha256.Sum256(narP), sha256.Sum256(narQ)
	evil := fmt.Sprintf("StorePath: /nix/store/%s-p\nURL: nar/%s\nCompression: none\nFileHash: sha256:%s\nFileSize: %d\nNarHash: sha256:%s\nNarSize: %d\nReferences: \n",
		hashP, fileQ, nix.EncodeBase32(sumQ[:]), len(narQ), nix.EncodeBase32(sumP[:]), len(narP))
	up.SetFile(hashP+".narinfo", []byte(evil))

	st, _ := local.New(t.TempDir())
	base := mirrortest.ServeOn(t, st, proxy.Mirror{Name: "nix", Type: "nix", URL: up.URL()})
	code, _, info, _ := mirrortest.Get(t, base+"/"+hashP+".narinfo")
	if code != 200 || narURL(info) != "nar/"+hashP+"/"+fileQ {
		t.Fatalf("narinfo: %d %s", code, info)
	}
	code, _, b, err := mirrortest.Get(t, base+"/"+narURL(info))
	t.Logf("%d %v %.200s", code, err, b)
	if code == 200 && err == nil {
		t.Errorf("the NAR of another path was served for %s (%d bytes)", hashP, len(b))
	}
	time.Sleep(100 * time.Millisecond)
	var stored []string
	_ = st.List(context.Background(), "", func(i storage.Info) error { stored = append(stored, i.Key); return nil })
	for _, k := range stored {
		if strings.Contains(k, fileQ) || strings.HasSuffix(k, hashP+".narinfo") {
			t.Errorf("kept after the NAR failed its narinfo's NarHash: %s", k)
		}
	}
	// The upstream repairs the narinfo: P is served, and its NAR verifies.
	up.SetFile(hashP+".narinfo", good)
	code, _, info, _ = mirrortest.Get(t, base+"/"+hashP+".narinfo")
	if code != 200 || narURL(info) != "nar/"+hashP+"/"+fileP {
		t.Fatalf("narinfo after the repair: %d %s", code, info)
	}
	if code, _, b, err := mirrortest.Get(t, base+"/"+narURL(info)); code != 200 || err != nil || !bytes.Equal(b, narP) {
		t.Errorf("the NAR after the repair: %d %v, %d bytes", code, err, len(b))
	}
}

// CheckNar reads every compression nix writes, and refuses a wrong size.
func TestCheckNar(t *testing.T) {
	nar := bytes.Repeat([]byte("nar bytes "), 1000)
	sum := sha256.Sum256(nar)
	n := nix.NarInfo{URL: "nar/" + strings.Repeat("1", 52) + ".nar", NarHash: sum[:], NarSize: int64(len(nar))}
	if err := n.CheckNar(bytes.NewReader(nar), int64(len(nar))); err != nil {
		t.Errorf("plain NAR: %v", err)
	}
	n.NarSize++
	if err := n.CheckNar(bytes.NewReader(nar), int64(len(nar))); err == nil {
		t.Error("a NAR of another size verified")
	}
}
