package servertest_test

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mirror-proxy/mirror-proxy/mirror/mirrortest"
	"github.com/mirror-proxy/mirror-proxy/proxy"
	"github.com/mirror-proxy/mirror-proxy/storage/local"
)

// Concurrent deploys of different versions of one artifact, through two
// replicas on one bucket, all appear in the maven-metadata.xml the proxy
// makes; a checksum PUT that does not match the stored file is a 409.
func TestMavenConcurrentDeploysAllLand(t *testing.T) {
	st, _ := local.New(t.TempDir())
	var bases []string
	for i := 0; i < 2; i++ {
		srv := newServer(proxy.Options{Store: st, MetaPrefix: "mirror-meta", DistPrefix: "mirror-dist",
			Mirrors: []proxy.Mirror{{Name: "maven", Type: "maven", Hosted: true, TTL: time.Minute}},
			Tokens:  hostedTokens(t), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		bases = append(bases, mirrortest.ServeProxy(t, srv)+"/maven")
	}
	put := func(u, body string) (int, string) {
		resp, msg := send(t, http.MethodPut, u, writeSecret, "application/octet-stream", strings.NewReader(body))
		return resp.StatusCode, msg
	}
	var wg sync.WaitGroup
	const n = 12
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			v := fmt.Sprintf("1.%d", i)
			u := fmt.Sprintf("%s/com/corp/lib/%s/lib-%s.pom", bases[i%2], v, v)
			if code, msg := put(u, "<project><version>"+v+"</version></project>"); code != http.StatusCreated {
				t.Errorf("deploy %s: %d %s", v, code, msg)
			}
		}(i)
	}
	wg.Wait()
	_, meta := authGet(t, bases[0]+"/com/corp/lib/maven-metadata.xml")
	for i := 0; i < n; i++ {
		if want := fmt.Sprintf("<version>1.%d</version>", i); !strings.Contains(meta, want) {
			t.Errorf("maven-metadata.xml lacks %s:\n%s", want, meta)
		}
	}
	if code, msg := put(bases[1]+"/com/corp/lib/1.0/lib-1.0.pom.sha1", "0000000000000000000000000000000000000000"); code != http.StatusConflict {
		t.Errorf("a checksum that does not match: %d %s", code, msg)
	}
	if code, msg := put(bases[1]+"/com/corp/lib/1.0/lib-1.0.pom", "<project>other</project>"); code != http.StatusConflict {
		t.Errorf("a release file deployed again with other bytes: %d %s", code, msg)
	}
	if code, msg := put(bases[1]+"/com/corp/lib/1.0/lib-1.0.pom", "<project><version>1.0</version></project>"); code != http.StatusOK {
		t.Errorf("an identical retry: %d %s", code, msg)
	}
}
