package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/schollz/progressbar/v3"

	"golang.org/x/mod/module"

	"github.com/mirror-proxy/mirror-proxy/mirror/cargo"
	"github.com/mirror-proxy/mirror-proxy/mirror/composer"
	"github.com/mirror-proxy/mirror-proxy/mirror/npm"
	"github.com/mirror-proxy/mirror-proxy/mirror/pypi"
	"github.com/mirror-proxy/mirror-proxy/mirror/rubygems"
	"github.com/mirror-proxy/mirror-proxy/proxy"
	"github.com/mirror-proxy/mirror-proxy/storage"
)

// prefetch fills storage with everything lock files name, through the
// same verified path as requests: it runs the proxy in-process on a
// loopback port and asks it for each package's metadata, then each file.

// item is one thing to fetch: a path under the mirror, or a function that
// finds more items in a fetched document.
type item struct {
	path   string
	accept string
	then   func(body []byte) ([]item, error) // more to fetch, from this document
	what   string
}

const prefetchUsage = `usage: mirror-proxy prefetch --mirror NAME FILE...

Fetches everything the lock files name into storage, through the same verified path as
requests (the proxy runs in-process on a loopback port), with the configuration of serve
(environment variables). FILE is a composer.lock (Composer mirrors), a requirements.txt or
pylock.toml (PyPI), a package-lock.json (npm), a go.sum (Go), a Cargo.lock (Cargo), or
mvn dependency:list output or a pom.xml (Maven), or a Gemfile.lock (RubyGems). What is stored already is not fetched
again, so an interrupted run is resumed by running it again. Exit 1 when anything failed.
`

func prefetch(args []string) int {
	mirrorName := ""
	var files []string
	for i := 0; i < len(args); i++ {
		switch {
		case args[i] == "--mirror" && i+1 < len(args):
			mirrorName = args[i+1]
			i++
		case strings.HasPrefix(args[i], "--mirror="):
			mirrorName = strings.TrimPrefix(args[i], "--mirror=")
		default:
			files = append(files, args[i])
		}
	}
	if mirrorName == "" || len(files) == 0 {
		fmt.Fprint(os.Stderr, prefetchUsage)
		return 2
	}
	cfg, err := LoadConfig()
	if err != nil {
		fmt.Fprintln(os.Stderr, "mirror-proxy:", err)
		return 2
	}
	var typ string
	for _, m := range cfg.Mirrors {
		if m.Name == mirrorName {
			typ = m.Type
		}
	}
	if typ == "" {
		fmt.Fprintf(os.Stderr, "mirror-proxy prefetch: no mirror named %q in MIRRORS\n", mirrorName)
		return 2
	}
	var items []item
	for _, f := range files {
		its, err := readLock(f, typ)
		if err != nil {
			fmt.Fprintln(os.Stderr, "mirror-proxy prefetch:", err)
			return 2
		}
		items = append(items, its...)
	}
	// Quiet logs: the progress bar and the summary are the output.
	cfg.LogLevel = "warn"
	log := newLogger(cfg)
	slog.SetDefault(log)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	failed := 0
	err = withServer(ctx, cfg, log, func(srv *proxy.Server, _ storage.Store) error {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		sctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- srv.Serve(sctx, l, 10*time.Minute) }()
		base := "http://" + l.Addr().String() + "/" + mirrorName
		failed = run(ctx, base, items)
		cancel() // graceful: downloads still running are committed first
		return <-done
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "mirror-proxy prefetch:", err)
		return 1
	}
	if failed > 0 {
		return 1
	}
	return 0
}

// run fetches every item (and what they lead to) with a progress bar, and
// prints a summary; it returns how many failed.
func run(ctx context.Context, base string, items []item) int {
	bar := progressbar.NewOptions(len(items), progressbar.OptionSetDescription("prefetch"),
		progressbar.OptionSetWriter(os.Stderr), progressbar.OptionShowCount(), progressbar.OptionClearOnFinish())
	client := &http.Client{Timeout: 30 * time.Minute}
	var n struct{ docs, fetched, present, failed int }
	var failures []string
	interrupted := ""
	for len(items) > 0 {
		it := items[0]
		items = items[1:]
		body, cache, err := get(ctx, client, base+it.path, it.accept, it.then != nil)
		if ctx.Err() != nil {
			// Interrupted (SIGINT, SIGTERM): the item in flight is not a
			// failure. The server's graceful stop commits a download that
			// completes; the next run finds it stored and goes on from there.
			interrupted = it.what
			break
		}
		if err == nil && it.then != nil {
			var more []item
			if more, err = it.then(body); err == nil {
				items = append(items, more...)
				bar.ChangeMax(bar.GetMax() + len(more))
			}
		}
		switch {
		case err != nil:
			n.failed++
			failures = append(failures, fmt.Sprintf("  %s: %v", it.what, err))
		case it.then != nil:
			n.docs++ // metadata: always revalidated, neither fetched nor present
		case cache == "HIT":
			n.present++
		default:
			n.fetched++
		}
		_ = bar.Add(1)
	}
	_ = bar.Finish()
	fmt.Fprintf(os.Stderr, "prefetch: %d files fetched, %d already present, %d failed (%d metadata documents read)\n",
		n.fetched, n.present, n.failed, n.docs)
	for _, f := range failures {
		fmt.Fprintln(os.Stderr, f)
	}
	if interrupted != "" {
		fmt.Fprintf(os.Stderr, "prefetch: interrupted at %s (stored if its download completes while stopping) with %d items not started; run it again to go on: what is stored is not fetched again\n",
			interrupted, len(items))
		return n.failed + 1 // an interrupted run did not do its job
	}
	return n.failed
}

// get fetches u; it returns the body when keep is set, and the X-Cache
// header (HIT: the file was in storage already).
func get(ctx context.Context, c *http.Client, u, accept string, keep bool) ([]byte, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, "", err
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1000))
		return nil, "", fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	cache := resp.Header.Get("X-Cache")
	if keep {
		b, err := io.ReadAll(resp.Body)
		return b, cache, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	return nil, cache, err
}

// readLock reads a lock file into items; errors name the file and line.
func readLock(file, typ string) ([]item, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	base := path.Base(file)
	switch {
	case typ == "composer" && strings.HasSuffix(base, ".lock"):
		return composerLock(file, b)
	case typ == "pypi" && strings.HasSuffix(base, ".txt"):
		return requirements(file, b)
	case typ == "pypi" && strings.HasSuffix(base, ".toml"):
		return pylock(file, b)
	case typ == "npm" && strings.HasSuffix(base, ".json"):
		return packageLock(file, b)
	case typ == "go" && strings.HasSuffix(base, ".sum"):
		return goSum(file, b)
	case typ == "cargo" && strings.HasSuffix(base, ".lock"):
		return cargoLock(file, b)
	case typ == "rubygems" && strings.HasSuffix(base, ".lock"):
		return gemfileLock(file, b)
	case typ == "maven" && strings.HasSuffix(base, ".xml"):
		return mavenPOM(file, b)
	case typ == "maven":
		return mavenDependencyList(file, b)
	}
	return nil, fmt.Errorf("%s: not a lock file of a %s mirror (composer.lock, requirements.txt, pylock.toml, package-lock.json, go.sum, Cargo.lock, a pom.xml or mvn dependency:list output, Gemfile.lock)", file, typ)
}

// jsonError names the line of a JSON syntax error.
func jsonError(file string, b []byte, err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Errorf("%s:%d: %v", file, bytes.Count(b[:se.Offset], []byte("\n"))+1, err)
	}
	return fmt.Errorf("%s: %v", file, err)
}

func composerLock(file string, b []byte) ([]item, error) {
	var lock struct {
		Packages    []lockedPackage `json:"packages"`
		PackagesDev []lockedPackage `json:"packages-dev"`
	}
	if err := json.Unmarshal(b, &lock); err != nil {
		return nil, jsonError(file, b, err)
	}
	items := []item{{path: "/packages.json", what: "packages.json"}}
	for _, p := range append(lock.Packages, lock.PackagesDev...) {
		if !composer.ValidName(p.Name) {
			return nil, fmt.Errorf("%s: %q is not a package name", file, p.Name)
		}
		normalized, err := composer.NormalizeVersion(p.Version)
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %v", file, p.Name, err)
		}
		p2 := "/p2/" + p.Name + ".json"
		if composer.IsDevVersion(normalized) {
			p2 = "/p2/" + p.Name + "~dev.json"
		}
		items = append(items, item{path: p2, what: p.Name + " metadata"})
		if p.Dist.Type != "" {
			items = append(items, item{what: p.Name + " " + p.Version, path: "/zipball/" + p.Name + "/" + composer.MirrorVersion(normalized) +
				"/ref" + composer.MirrorReference(p.Dist.Reference) + "." + p.Dist.Type})
		}
	}
	return items, nil
}

type lockedPackage struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Dist    struct {
		Type      string `json:"type"`
		Reference string `json:"reference"`
	} `json:"dist"`
}

// requirements reads pinned lines ("name==version", with --hash options).
func requirements(file string, b []byte) ([]item, error) {
	var items []item
	sc := bufio.NewScanner(bytes.NewReader(b))
	var logical string
	line, start := 0, 0
	for sc.Scan() {
		line++
		text := sc.Text()
		if logical == "" {
			start = line
		}
		if strings.HasSuffix(strings.TrimSpace(text), "\\") {
			logical += strings.TrimSuffix(strings.TrimSpace(text), "\\") + " "
			continue
		}
		logical += text
		req := strings.TrimSpace(logical)
		logical = ""
		if i := strings.Index(req, " #"); i >= 0 {
			req = req[:i]
		}
		if req == "" || strings.HasPrefix(req, "#") || strings.HasPrefix(req, "-") {
			continue
		}
		fields := strings.Fields(req)
		spec := strings.TrimSpace(strings.SplitN(fields[0], ";", 2)[0])
		name, version, ok := strings.Cut(spec, "==")
		if i := strings.IndexByte(name, '['); i >= 0 {
			name = name[:i]
		}
		if !ok || !pypi.ValidName(name) || version == "" {
			return nil, fmt.Errorf("%s:%d: %q is not a pinned requirement (name==version)", file, start, spec)
		}
		hashes := map[string]bool{}
		for _, f := range fields[1:] {
			if h, ok := strings.CutPrefix(f, "--hash=sha256:"); ok {
				hashes[strings.ToLower(h)] = true
			}
		}
		project := pypi.Normalize(name)
		items = append(items, item{path: "/simple/" + project + "/", accept: pypi.JSONType, what: project + " page",
			then: pypiFiles(project, version, hashes)})
	}
	return items, sc.Err()
}

// pypiFiles finds, in a project's JSON page, the files of version (those
// with a listed hash, when hashes are given) and their core metadata.
func pypiFiles(project, version string, hashes map[string]bool) func([]byte) ([]item, error) {
	return func(b []byte) ([]item, error) {
		var doc struct {
			Files []struct {
				Filename     string            `json:"filename"`
				URL          string            `json:"url"`
				Hashes       map[string]string `json:"hashes"`
				CoreMetadata any               `json:"core-metadata"`
			} `json:"files"`
		}
		if err := json.Unmarshal(b, &doc); err != nil {
			return nil, err
		}
		page, _ := url.Parse("/simple/" + project + "/")
		var out []item
		for _, f := range doc.Files {
			df, err := pypi.ParseDistFilename(f.Filename)
			if err != nil || !pypi.SameVersion(df.Version, version) {
				continue
			}
			if len(hashes) > 0 && !hashes[strings.ToLower(f.Hashes["sha256"])] {
				continue
			}
			ref, err := url.Parse(f.URL)
			if err != nil {
				continue
			}
			p := page.ResolveReference(ref).Path
			out = append(out, item{path: p, what: f.Filename})
			if f.CoreMetadata != nil && f.CoreMetadata != false {
				out = append(out, item{path: p + ".metadata", what: f.Filename + ".metadata"})
			}
		}
		if len(out) == 0 {
			return nil, fmt.Errorf("no file of %s %s in the index", project, version)
		}
		return out, nil
	}
}

// pylock reads PEP 751's pylock.toml: each package's name, version and
// the sha256 of its wheels and sdist.
func pylock(file string, b []byte) ([]item, error) {
	var lock struct {
		Packages []struct {
			Name    string `toml:"name"`
			Version string `toml:"version"`
			Sdist   *struct {
				Hashes map[string]string `toml:"hashes"`
			} `toml:"sdist"`
			Wheels []struct {
				Hashes map[string]string `toml:"hashes"`
			} `toml:"wheels"`
		} `toml:"packages"`
	}
	if _, err := toml.Decode(string(b), &lock); err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, fmt.Errorf("%s:%d: %s", file, pe.Position.Line, pe.Message)
		}
		return nil, fmt.Errorf("%s: %v", file, err)
	}
	var items []item
	for _, p := range lock.Packages {
		if !pypi.ValidName(p.Name) || p.Version == "" {
			return nil, fmt.Errorf("%s: package %q has no valid name and version", file, p.Name)
		}
		hashes := map[string]bool{}
		for _, w := range p.Wheels {
			if h := w.Hashes["sha256"]; h != "" {
				hashes[strings.ToLower(h)] = true
			}
		}
		if p.Sdist != nil && p.Sdist.Hashes["sha256"] != "" {
			hashes[strings.ToLower(p.Sdist.Hashes["sha256"])] = true
		}
		project := pypi.Normalize(p.Name)
		items = append(items, item{path: "/simple/" + project + "/", accept: pypi.JSONType, what: project + " page",
			then: pypiFiles(project, p.Version, hashes)})
	}
	return items, nil
}

// cargoLock reads a Cargo.lock: each registry package's index file and
// .crate (path and git dependencies are not the registry's).
func cargoLock(file string, b []byte) ([]item, error) {
	var lock struct {
		Package []struct {
			Name, Version, Source string
		} `toml:"package"`
	}
	if _, err := toml.Decode(string(b), &lock); err != nil {
		return nil, fmt.Errorf("%s: %v", file, err)
	}
	var items []item
	seen := map[string]bool{}
	for _, p := range lock.Package {
		if !strings.HasPrefix(p.Source, "registry+") && !strings.HasPrefix(p.Source, "sparse+") {
			continue
		}
		if !cargo.ValidName(p.Name) || p.Version == "" || strings.ContainsAny(p.Version, "/?#% ") {
			return nil, fmt.Errorf("%s: %q %q is not a crate name and version", file, p.Name, p.Version)
		}
		if !seen[p.Name] {
			seen[p.Name] = true
			items = append(items, item{path: "/" + cargo.IndexPath(p.Name), what: p.Name + " index", then: func([]byte) ([]item, error) { return nil, nil }})
		}
		items = append(items, item{path: "/dl/" + p.Name + "/" + p.Version + "/download", what: p.Name + " " + p.Version})
	}
	return items, nil
}

// gemfileLock reads a Gemfile.lock: the compact index's /versions, and
// each gem of its GEM sections ("    name (version[-platform])") with its
// /info and .gem (gems from git or a path are not the repository's).
func gemfileLock(file string, b []byte) ([]item, error) {
	items := []item{{path: "/versions", what: "/versions", then: func([]byte) ([]item, error) { return nil, nil }}}
	inGem, seen := false, map[string]bool{}
	for i, line := range strings.Split(string(b), "\n") {
		switch {
		case line == "GEM":
			inGem = true
			continue
		case line != "" && line[0] != ' ':
			inGem = false
			continue
		}
		if !inGem || !strings.HasPrefix(line, "    ") || strings.HasPrefix(line, "     ") {
			continue
		}
		name, rest, ok := strings.Cut(strings.TrimSpace(line), " ")
		version := strings.TrimSuffix(strings.TrimPrefix(rest, "("), ")")
		if !ok || !rubygems.ValidName(name) || version == "" || strings.ContainsAny(version, "/?#% ") {
			return nil, fmt.Errorf("%s:%d: %q is not a gem and version", file, i+1, strings.TrimSpace(line))
		}
		if !seen[name] {
			seen[name] = true
			items = append(items, item{path: "/info/" + name, what: name + " info", then: func([]byte) ([]item, error) { return nil, nil }})
		}
		items = append(items, item{path: "/gems/" + name + "-" + version + ".gem", what: name + " " + version})
	}
	return items, nil
}

// mavenArtifact is the items of one resolved artifact: its .pom and its
// file (type jar unless said, with its classifier).
func mavenArtifact(group, artifact, typ, classifier, version string) []item {
	base := strings.ReplaceAll(group, ".", "/") + "/" + artifact + "/" + version + "/" + artifact + "-" + version
	items := []item{{path: "/" + base + ".pom", what: group + ":" + artifact + ":" + version + " pom"}}
	if typ == "" {
		typ = "jar"
	}
	if typ != "pom" {
		file := base
		if classifier != "" {
			file += "-" + classifier
		}
		ext := typ
		if typ == "test-jar" || typ == "maven-plugin" || typ == "bundle" {
			ext = "jar"
		}
		items = append(items, item{path: "/" + file + "." + ext, what: group + ":" + artifact + ":" + version})
	}
	return items
}

var mavenCoordRe = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]*$`)

// mavenDependencyList reads mvn dependency:list output: lines of
// group:artifact:type[:classifier]:version:scope (with or without the
// "[INFO]" prefix and a module name after them).
func mavenDependencyList(file string, b []byte) ([]item, error) {
	var items []item
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "[INFO]"))
		f := strings.Fields(line)
		if len(f) == 0 || strings.Count(f[0], ":") < 4 {
			continue // headers, blank lines, "The following files have been resolved:"
		}
		c := strings.Split(f[0], ":")
		var g, a, typ, cl, v string
		switch len(c) {
		case 5:
			g, a, typ, v = c[0], c[1], c[2], c[3]
		case 6:
			g, a, typ, cl, v = c[0], c[1], c[2], c[3], c[4]
		default:
			return nil, fmt.Errorf("%s:%d: %q is not group:artifact:type[:classifier]:version:scope", file, i+1, f[0])
		}
		for _, x := range []string{g, a, typ, v} {
			if !mavenCoordRe.MatchString(x) {
				return nil, fmt.Errorf("%s:%d: %q is not group:artifact:type[:classifier]:version:scope", file, i+1, f[0])
			}
		}
		items = append(items, mavenArtifact(g, a, typ, cl, v)...)
	}
	if len(items) == 0 {
		return nil, fmt.Errorf("%s: no group:artifact:type:version:scope line (the output of mvn dependency:list)", file)
	}
	return items, nil
}

// mavenPOM reads a pom.xml's dependencies with literal versions (its
// direct ones: the transitive ones come from a resolved list).
func mavenPOM(file string, b []byte) ([]item, error) {
	var pom struct {
		Dependencies []struct {
			GroupID    string `xml:"groupId"`
			ArtifactID string `xml:"artifactId"`
			Version    string `xml:"version"`
			Type       string `xml:"type"`
			Classifier string `xml:"classifier"`
		} `xml:"dependencies>dependency"`
	}
	if err := xml.Unmarshal(b, &pom); err != nil {
		return nil, fmt.Errorf("%s: %v", file, err)
	}
	var items []item
	for _, d := range pom.Dependencies {
		if !mavenCoordRe.MatchString(d.GroupID) || !mavenCoordRe.MatchString(d.ArtifactID) || !mavenCoordRe.MatchString(d.Version) {
			continue // a property or a range: not a literal version
		}
		items = append(items, mavenArtifact(d.GroupID, d.ArtifactID, d.Type, d.Classifier, d.Version)...)
	}
	return items, nil
}

// goSum reads a go.sum: each module version's .info and .mod, and its
// .zip when the go.sum has the zip's hash (a "/go.mod" line alone means
// only the go.mod was needed).
func goSum(file string, b []byte) ([]item, error) {
	var items []item
	seen := map[string]bool{}
	for i, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) != 3 || !strings.HasPrefix(f[2], "h1:") {
			return nil, fmt.Errorf("%s:%d: not a go.sum line (module version h1:hash)", file, i+1)
		}
		version, modOnly := strings.CutSuffix(f[1], "/go.mod")
		ep, err1 := module.EscapePath(f[0])
		ev, err2 := module.EscapeVersion(version)
		if err1 != nil || err2 != nil || module.Check(f[0], version) != nil {
			return nil, fmt.Errorf("%s:%d: %s %s is not a module version", file, i+1, f[0], version)
		}
		base := "/" + ep + "/@v/" + ev
		what := f[0] + "@" + version
		if !seen[what] {
			seen[what] = true
			items = append(items, item{path: base + ".info", what: what + " .info", then: func([]byte) ([]item, error) { return nil, nil }},
				item{path: base + ".mod", what: what + " go.mod"})
		}
		if !modOnly {
			items = append(items, item{path: base + ".zip", what: what})
		}
	}
	return items, nil
}

// packageLock reads package-lock.json (lockfileVersion 2 and 3).
func packageLock(file string, b []byte) ([]item, error) {
	var lock struct {
		Packages map[string]struct {
			Version  string `json:"version"`
			Resolved string `json:"resolved"`
			Link     bool   `json:"link"`
		} `json:"packages"`
	}
	if err := json.Unmarshal(b, &lock); err != nil {
		return nil, jsonError(file, b, err)
	}
	var items []item
	for key, p := range lock.Packages {
		i := strings.LastIndex(key, "node_modules/")
		if key == "" || i < 0 || p.Link || p.Version == "" {
			continue
		}
		name := key[i+len("node_modules/"):]
		if !npm.ValidName(name) {
			return nil, fmt.Errorf("%s: %q is not a package name", file, name)
		}
		tarball := path.Base(p.Resolved)
		if !npm.ValidTarball(tarball) {
			base := name
			if j := strings.IndexByte(name, '/'); j >= 0 {
				base = name[j+1:]
			}
			tarball = base + "-" + p.Version + ".tgz"
		}
		items = append(items, item{path: "/" + npm.Escape(name), accept: npm.AbbreviatedType, what: name + " packument"},
			item{path: "/" + name + "/-/" + tarball, what: name + "@" + p.Version})
	}
	return items, nil
}
