package maven_test

import (
	"testing"

	"github.com/mirror-proxy/mirror-proxy/internal/fakemaven"
	"github.com/mirror-proxy/mirror-proxy/mirror/mirrortest"
)

func TestContract(t *testing.T) {
	var up *fakemaven.Server
	big := fakemaven.JarPath("com.example", "big", "2.0")
	mirrortest.Run(t, mirrortest.Fixture{
		Type: "maven",
		Start: func(t *testing.T) (string, func(), func(bool)) {
			up = fakemaven.New("")
			up.Publish(fakemaven.Artifact{Group: "com.example", Artifact: "big", Version: "2.0", Size: 3 << 19})
			if err := up.Start("127.0.0.1:0"); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(up.Stop)
			return up.URL(), up.Stop, func(on bool) { up.Corrupt(big, on) }
		},
		Meta: "/com/example/lib-a/maven-metadata.xml", Missing: "/com/example/nothing/maven-metadata.xml",
		Forms: [][]string{{"/com/example/lib-a/maven-metadata.xml"}, {"/com/example/lib-b/maven-metadata.xml"}},
		File: func(t *testing.T, base string) (string, []byte) {
			return base + "/" + big, up.File(big)
		},
	})
}
