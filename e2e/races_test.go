package e2e

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mirror-proxy/mirror-proxy/internal/fakeconda"
	"github.com/mirror-proxy/mirror-proxy/internal/fakepypi"
	"github.com/mirror-proxy/mirror-proxy/internal/testenv"
	composerpkg "github.com/mirror-proxy/mirror-proxy/mirror/composer"
	nixpkg "github.com/mirror-proxy/mirror-proxy/mirror/nix"
)

// raceEcosystem publishes one version with racer-specific bytes, and
// checks what a replica serves for it.
type raceEcosystem struct {
	name     string // the mirror's name and type
	conflict string // what a refused racer's answer says
	loser    int    // its status
	publish  func(base string, round, racer int) (int, string)
	// served reports whether the replica at base lists the round's
	// version, and whether the digest its index gives is the bytes it
	// serves.
	served func(t *testing.T, base string, round int) (listed, match bool)
}

func do(method, url, ctype string, body []byte) (int, string) {
	req, _ := http.NewRequest(method, url, bytes.NewReader(body))
	req.Header.Set("Content-Type", ctype)
	req.Header.Set("Authorization", "Bearer "+e2eWrite)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func fetchBytes(t *testing.T, url string, hdr ...string) []byte {
	code, _, b := get(t, url, hdr...)
	if code != 200 {
		return nil
	}
	return b
}

func hexSum(b []byte, h func([]byte) []byte) string { return hex.EncodeToString(h(b)) }

func sha1Of(b []byte) []byte   { s := sha1.Sum(b); return s[:] }
func sha256Of(b []byte) []byte { s := sha256.Sum256(b); return s[:] }

// npmTgz is a package tarball whose contents tell the racer apart.
func npmTgz(name, version, tag string) []byte {
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	body := []byte(`{"name":"` + name + `","version":"` + version + `","description":"` + tag + `"}`)
	tw.WriteHeader(&tar.Header{Name: "package/package.json", Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg})
	tw.Write(body)
	tw.Close()
	gz.Close()
	return buf.Bytes()
}

func raceEcosystems() []raceEcosystem {
	version := func(round int) string { return fmt.Sprintf("1.%d.0", round) }
	return []raceEcosystem{
		{
			name: "composer", conflict: "published already", loser: 409,
			publish: func(base string, round, racer int) (int, string) {
				var buf bytes.Buffer
				ct := writeMultipart(&buf, "package", "package.zip", zipWith(map[string]string{
					"composer.json": fmt.Sprintf(`{"name":"acme/race","description":"racer %d"}`, racer)}))
				return do(http.MethodPut, base+"/packages/upload/acme/race/"+version(round), ct, buf.Bytes())
			},
			served: func(t *testing.T, base string, round int) (bool, bool) {
				vs, err := composerpkg.Expand(fetchBytes(t, base+"/p2/acme/race.json"), "acme/race")
				if err != nil {
					return false, false
				}
				for _, v := range vs {
					if v["version"] == version(round) {
						d := v["dist"].(map[string]any)
						zb := fetchBytes(t, strings.TrimSuffix(base, "/composer")+d["url"].(string))
						return true, zb != nil && d["shasum"] == hexSum(zb, sha1Of)
					}
				}
				return false, false
			},
		},
		{
			name: "npm", conflict: "previously published", loser: 403,
			publish: func(base string, round, racer int) (int, string) {
				tgz := npmTgz("@acme/race", version(round), fmt.Sprint("racer ", racer))
				doc := map[string]any{"name": "@acme/race", "versions": map[string]any{version(round): map[string]any{
					"name": "@acme/race", "version": version(round), "dist": map[string]any{}}},
					"_attachments": map[string]any{"@acme/race-" + version(round) + ".tgz": map[string]any{
						"data": base64.StdEncoding.EncodeToString(tgz), "length": len(tgz)}}}
				b, _ := json.Marshal(doc)
				return do(http.MethodPut, base+"/@acme%2frace", "application/json", b)
			},
			served: func(t *testing.T, base string, round int) (bool, bool) {
				var p struct {
					Versions map[string]struct {
						Dist struct{ Tarball, Integrity string }
					}
				}
				if json.Unmarshal(fetchBytes(t, base+"/@acme%2frace"), &p) != nil {
					return false, false
				}
				d, ok := p.Versions[version(round)]
				if !ok {
					return false, false
				}
				tgz := fetchBytes(t, d.Dist.Tarball)
				s := sha512.Sum512(tgz)
				return true, tgz != nil && d.Dist.Integrity == "sha512-"+base64.StdEncoding.EncodeToString(s[:])
			},
		},
		{
			name: "pypi", conflict: "File already exists", loser: 400,
			publish: func(base string, round, racer int) (int, string) {
				sdist, filename := fakepypi.BuildSdist("race", fakepypi.Release{Version: version(round),
					RequiresDist: []string{fmt.Sprintf("dep%d", racer)}})
				var buf bytes.Buffer
				mw := multipart.NewWriter(&buf)
				for k, v := range map[string]string{":action": "file_upload", "name": "race", "version": version(round),
					"sha256_digest": hexSum(sdist, sha256Of)} {
					mw.WriteField(k, v)
				}
				w, _ := mw.CreateFormFile("content", filename)
				w.Write(sdist)
				mw.Close()
				return do(http.MethodPost, base+"/legacy/", mw.FormDataContentType(), buf.Bytes())
			},
			served: func(t *testing.T, base string, round int) (bool, bool) {
				var page struct {
					Files []struct {
						Filename, URL string
						Hashes        map[string]string
					}
				}
				if json.Unmarshal(fetchBytes(t, base+"/simple/race/", "Accept", "application/vnd.pypi.simple.v1+json"), &page) != nil {
					return false, false
				}
				for _, f := range page.Files {
					if f.Filename == "race-"+version(round)+".tar.gz" {
						page, _ := url.Parse(base + "/simple/race/")
						ref, _ := url.Parse(f.URL)
						b := fetchBytes(t, page.ResolveReference(ref).String())
						return true, b != nil && f.Hashes["sha256"] == hexSum(b, sha256Of)
					}
				}
				return false, false
			},
		},
		{
			name: "conda", conflict: "published already", loser: 409,
			publish: func(base string, round, racer int) (int, string) {
				p := fakeconda.Package{Name: "race", Version: version(round), Build: "0", Subdir: "noarch",
					Depends: []string{fmt.Sprintf("dep%d", racer)}}
				return do(http.MethodPut, base+"/noarch/"+p.Filename(), "application/octet-stream", fakeconda.Build(p))
			},
			served: func(t *testing.T, base string, round int) (bool, bool) {
				var rd struct {
					Packages map[string]struct{ SHA256 string } `json:"packages.conda"`
				}
				if json.Unmarshal(fetchBytes(t, base+"/noarch/repodata.json"), &rd) != nil {
					return false, false
				}
				file := "race-" + version(round) + "-0.conda"
				rec, ok := rd.Packages[file]
				if !ok {
					return false, false
				}
				b := fetchBytes(t, base+"/noarch/"+file)
				return true, b != nil && rec.SHA256 == hexSum(b, sha256Of)
			},
		},
	}
}

func zipWith(files map[string]string) []byte {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for name, body := range files {
		w, _ := zw.Create(name)
		w.Write([]byte(body))
	}
	zw.Close()
	return buf.Bytes()
}

// Two replicas on one bucket, 30 rounds per hosting ecosystem of two
// publishes at once (one through each replica) of one version with other
// bytes: exactly one wins, the other gets the ecosystem's 4xx naming the
// conflict, and what either replica lists is the bytes it serves. With
// Redis on versitygw (whose If-Match is not atomic: Redis serialises the
// index writes), and without Redis on a store with atomic conditional
// writes (two processes on one local directory).
func TestRacingPublishesOneWinsOnEveryReplica(t *testing.T) {
	testenv.Deadline(t, 5*time.Minute)
	var mirrors []string
	for _, e := range raceEcosystems() {
		mirrors = append(mirrors, `{"name":"`+e.name+`","type":"`+e.name+`","hosted":true,"public":true,"ttl":"1s"}`)
	}
	configs := map[string]func(t *testing.T) map[string]string{
		"versitygw with Redis": func(t *testing.T) map[string]string {
			s3 := testenv.StartS3(t)
			return map[string]string{"STORAGE_SOURCE": "s3", "STORAGE_AWS_BUCKET": s3.NewBucket(t),
				"STORAGE_AWS_ARGS": s3.ArgsJSON(), "REDIS_URL": testenv.StartRedis(t).URL}
		},
		"local directory without Redis": func(t *testing.T) map[string]string {
			return map[string]string{"STORAGE_LOCAL_DIR": t.TempDir()}
		},
	}
	for cname, config := range configs {
		t.Run(cname, func(t *testing.T) {
			env := config(t)
			env["MIRRORS"] = "[" + strings.Join(mirrors, ",") + "]"
			env["AUTH_TOKENS"] = hostedTokensJSON()
			pxs := []*proc{startProxy(t, env), startProxy(t, env)}
			for _, e := range raceEcosystems() {
				t.Run(e.name, func(t *testing.T) {
					const rounds = 30
					for round := range rounds {
						codes := make([]int, 2)
						bodies := make([]string, 2)
						var wg sync.WaitGroup
						for racer := range 2 {
							wg.Go(func() { codes[racer], bodies[racer] = e.publish(pxs[racer].URL+"/"+e.name, round, racer) })
						}
						wg.Wait()
						wins := 0
						for i, c := range codes {
							switch {
							case c/100 == 2:
								wins++
							case c != e.loser || !strings.Contains(bodies[i], e.conflict):
								t.Errorf("round %d racer %d: %d %.300s; want %d naming the conflict", round, i, c, bodies[i], e.loser)
							}
						}
						if wins != 1 {
							t.Errorf("round %d: %d winners (%v)", round, wins, codes)
						}
						for i, px := range pxs {
							if listed, match := e.served(t, px.URL+"/"+e.name, round); listed && !match {
								t.Errorf("round %d: replica %d serves other bytes than its index's digest", round, i)
							}
						}
					}
					time.Sleep(1100 * time.Millisecond) // the hosted TTL: every replica reads the indexes again
					for i, px := range pxs {
						for round := range rounds {
							if listed, match := e.served(t, px.URL+"/"+e.name, round); !listed || !match {
								t.Errorf("replica %d, round %d: listed %v, digest matches the bytes %v", i, round, listed, match)
							}
						}
					}
				})
			}
		})
	}
}

// A hosted package of each hosting ecosystem is published through one
// replica and then installed from a fresh replica, both with an upstream
// that was never reachable: its metadata, its root (Composer's
// packages.json, conda's repodata.json, Nix's nix-cache-info) and its file
// all come from the bucket alone. Composer and npm install it with the
// real clients.
func TestHostedPackagesNeedNoUpstream(t *testing.T) {
	testenv.Deadline(t, 3*time.Minute)
	dead := "http://127.0.0.1:1"
	var mirrors []string
	for _, e := range raceEcosystems() {
		mirrors = append(mirrors, `{"name":"`+e.name+`","type":"`+e.name+`","url":"`+dead+`","hosted":true,"public":true}`)
	}
	mirrors = append(mirrors, `{"name":"nix","type":"nix","url":"`+dead+`","hosted":true,"public":true}`)
	env := map[string]string{"STORAGE_LOCAL_DIR": t.TempDir(), "AUTH_TOKENS": hostedTokensJSON(),
		"MIRRORS": "[" + strings.Join(mirrors, ",") + "]"}
	first := startProxy(t, env)
	for _, e := range raceEcosystems() {
		if code, body := e.publish(first.URL+"/"+e.name, 0, 0); code/100 != 2 {
			t.Fatalf("%s: publish with the upstream unreachable: %d %.300s", e.name, code, body)
		}
	}
	nar := []byte("a hosted NAR")
	sum := sha256.Sum256(nar)
	narFile := nixpkg.EncodeBase32(sum[:]) + ".nar"
	hash := strings.Repeat("b", 32)
	info := fmt.Sprintf("StorePath: /nix/store/%s-x\nURL: nar/%s\nCompression: none\nFileHash: sha256:%s\nFileSize: %d\nNarHash: sha256:%s\nNarSize: %d\nReferences: \n",
		hash, narFile, nixpkg.EncodeBase32(sum[:]), len(nar), nixpkg.EncodeBase32(sum[:]), len(nar))
	if code, body := do(http.MethodPut, first.URL+"/nix/nar/"+narFile, "application/x-nix-nar", nar); code/100 != 2 {
		t.Fatalf("nix: NAR upload: %d %s", code, body)
	}
	if code, body := do(http.MethodPut, first.URL+"/nix/"+hash+".narinfo", "text/x-nix-narinfo", []byte(info)); code/100 != 2 {
		t.Fatalf("nix: narinfo upload: %d %s", code, body)
	}
	first.Kill()

	fresh := startProxy(t, env)
	for _, e := range raceEcosystems() {
		if listed, match := e.served(t, fresh.URL+"/"+e.name, 0); !listed || !match {
			t.Errorf("%s from a fresh replica: listed %v, bytes match %v", e.name, listed, match)
		}
	}
	for _, path := range []string{"/composer/packages.json", "/conda/noarch/repodata.json", "/nix/nix-cache-info", "/nix/" + hash + ".narinfo", "/nix/nar/" + narFile} {
		if code, _, b := get(t, fresh.URL+path); code != 200 {
			t.Errorf("%s from a fresh replica: %d %.200s", path, code, b)
		}
	}
	// The real clients.
	dir := composerProject(t, fresh.URL+"/composer", map[string]string{"acme/race": "1.0.0"})
	if out, err := composer(t, dir, "install", "--no-interaction", "--no-progress"); err != nil {
		t.Errorf("composer install of a hosted package, upstream never reachable: %v\n%s", err, tailLines(out, 20))
	}
	app := t.TempDir()
	os.WriteFile(filepath.Join(app, "package.json"), []byte(`{"name":"app","version":"1.0.0","private":true,"dependencies":{"@acme/race":"1.0.0"}}`), 0o644)
	if out, err := npmRun(t, app, fresh.URL+"/npm/", t.TempDir(), "install", "--no-audit"); err != nil {
		t.Errorf("npm install of a hosted package, upstream never reachable: %v\n%s", err, tailLines(out, 20))
	}
}

// The real clients race: through two replicas on one bucket (versitygw,
// Redis), npm publish, twine upload and curl's Composer upload of one
// version with other bytes at once. One wins, the other client fails
// with the conflict in its own output, and both replicas serve the
// winner's bytes under the winner's digest.
func TestRacingPublishesWithRealClients(t *testing.T) {
	testenv.Deadline(t, 3*time.Minute)
	s3 := testenv.StartS3(t)
	env := map[string]string{"STORAGE_SOURCE": "s3", "STORAGE_AWS_BUCKET": s3.NewBucket(t), "STORAGE_AWS_ARGS": s3.ArgsJSON(),
		"REDIS_URL": testenv.StartRedis(t).URL, "AUTH_TOKENS": hostedTokensJSON(),
		"MIRRORS": `[{"name":"composer","type":"composer","hosted":true,"public":true},` +
			`{"name":"npm","type":"npm","hosted":true,"public":true},{"name":"pypi","type":"pypi","hosted":true,"public":true}]`}
	pxs := []*proc{startProxy(t, env), startProxy(t, env)}
	ecos := map[string]raceEcosystem{}
	for _, e := range raceEcosystems() {
		ecos[e.name] = e
	}
	race := func(what string, run func(i int) (bool, string), conflict string) {
		ok := make([]bool, 2)
		outs := make([]string, 2)
		var wg sync.WaitGroup
		for i := range 2 {
			wg.Go(func() { ok[i], outs[i] = run(i) })
		}
		wg.Wait()
		if ok[0] == ok[1] {
			t.Errorf("%s: successes %v, want exactly one\n%s\n---\n%s", what, ok, tailLines(outs[0], 15), tailLines(outs[1], 15))
			return
		}
		loser := outs[0]
		if ok[0] {
			loser = outs[1]
		}
		if !strings.Contains(loser, conflict) {
			t.Errorf("%s: the losing client does not show the conflict %q:\n%s", what, conflict, tailLines(loser, 15))
		}
	}

	// npm publish of @acme/race 1.0.0 with other contents each.
	race("npm publish", func(i int) (bool, string) {
		d := t.TempDir()
		os.WriteFile(filepath.Join(d, "package.json"), []byte(`{"name":"@acme/race","version":"1.0.0","main":"index.js"}`), 0o644)
		os.WriteFile(filepath.Join(d, "index.js"), []byte(fmt.Sprintf("module.exports = %d;\n", i)), 0o644)
		host := strings.TrimPrefix(pxs[i].URL, "http://")
		out, err := npmWith(t, "//"+host+"/npm/:_authToken="+e2eWrite+"\n", d, pxs[i].URL+"/npm/", t.TempDir(), "publish")
		return err == nil, out
	}, "previously published")

	// twine upload of race-1.0.0.tar.gz with other contents each.
	race("twine upload", func(i int) (bool, string) {
		sdist, filename := fakepypi.BuildSdist("race", fakepypi.Release{Version: "1.0.0", RequiresDist: []string{fmt.Sprintf("dep%d", i)}})
		p := filepath.Join(t.TempDir(), filename)
		os.WriteFile(p, sdist, 0o644)
		out, err := twine(t, pxs[i].URL+"/pypi/legacy/", e2eWrite, "--verbose", p) // the body names the conflict
		return err == nil, out
	}, "File already exists")

	// curl's multipart PUT of acme/race 1.0.0 with other zips.
	race("curl composer upload", func(i int) (bool, string) {
		z := zipWith(map[string]string{"composer.json": fmt.Sprintf(`{"name":"acme/race","description":"racer %d"}`, i)})
		code, body := curlPublish(t, pxs[i].URL+"/composer", e2eWrite, "acme/race", "1.0.0", z)
		return code == 201, fmt.Sprintf("%d %s", code, body)
	}, "published already")

	for _, name := range []string{"npm", "pypi", "composer"} {
		for i, px := range pxs {
			if listed, match := ecos[name].served(t, px.URL+"/"+name, 0); !listed || !match {
				t.Errorf("%s on replica %d: listed %v, bytes match the index %v", name, i, listed, match)
			}
		}
	}
}
