package nix

import (
	"encoding/hex"
	"testing"
)

func TestDecodeBase32(t *testing.T) {
	// nix-hash --type sha256 --to-base16 17gd6zz...
	b, err := DecodeBase32("17gd6zzlkx90irc6qawagdkgh1d7qvlnq46yjf7xiqw9ycz7zq4a", 32)
	if err != nil || hex.EncodeToString(b) != "8ae07f3ef389e3d88f93de106ce9c6a705f8667b8a2b6c588e20f549ff37ed9d" {
		t.Errorf("got %x %v", b, err)
	}
	for _, bad := range []string{"17gd6", "e7gd6zzlkx90irc6qawagdkgh1d7qvlnq46yjf7xiqw9ycz7zq4a", "z7gd6zzlkx90irc6qawagdkgh1d7qvlnq46yjf7xiqw9ycz7zq4a"} {
		if _, err := DecodeBase32(bad, 32); err == nil {
			t.Errorf("%q decoded", bad)
		}
	}
	if NarFileHash("17gd6zzlkx90irc6qawagdkgh1d7qvlnq46yjf7xiqw9ycz7zq4a.nar.xz") == nil || NarFileHash("../x.nar.xz") != nil {
		t.Error("NarFileHash")
	}
}

func TestParseNarInfo(t *testing.T) {
	ni := "StorePath: /nix/store/6h9lcbx523532ax1c5g2351w9bm8ykhy-f.txt\nURL: nar/17gd6zzlkx90irc6qawagdkgh1d7qvlnq46yjf7xiqw9ycz7zq4a.nar.xz\nCompression: xz\nFileHash: sha256:17gd6zzlkx90irc6qawagdkgh1d7qvlnq46yjf7xiqw9ycz7zq4a\n"
	n, err := ParseNarInfo([]byte(ni), "6h9lcbx523532ax1c5g2351w9bm8ykhy")
	if err != nil || n.URL != "nar/17gd6zzlkx90irc6qawagdkgh1d7qvlnq46yjf7xiqw9ycz7zq4a.nar.xz" {
		t.Errorf("%+v %v", n, err)
	}
	if _, err := ParseNarInfo([]byte(ni), "0000000000000000000000000000000z"); err == nil {
		t.Error("a narinfo for another hash was accepted")
	}
}

func TestEncodeBase32(t *testing.T) {
	b, _ := hex.DecodeString("8ae07f3ef389e3d88f93de106ce9c6a705f8667b8a2b6c588e20f549ff37ed9d")
	if s := EncodeBase32(b); s != "17gd6zzlkx90irc6qawagdkgh1d7qvlnq46yjf7xiqw9ycz7zq4a" {
		t.Errorf("got %s", s)
	}
}
