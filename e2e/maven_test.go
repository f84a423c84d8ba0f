package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/mirror-proxy/mirror-proxy/internal/fakemaven"
	"github.com/mirror-proxy/mirror-proxy/internal/testenv"
)

// debianMavenRepo is where Debian's Maven plugin packages put the plugins
// a real mvn needs to build offline.
const debianMavenRepo = "/usr/share/maven-repo"

// debianPlugins are the build plugins of a jar project, pinned to the
// versions Debian's packages install (mvn's defaults are not there).
var debianPlugins = []string{"maven-resources-plugin", "maven-compiler-plugin", "maven-surefire-plugin",
	"maven-jar-plugin", "maven-install-plugin", "maven-deploy-plugin"}

// pluginVersion is the version of plugin in Debian's repository (its
// newest that is not the "debian" alias).
func pluginVersion(t *testing.T, plugin string) string {
	t.Helper()
	ents, _ := os.ReadDir(filepath.Join(debianMavenRepo, "org/apache/maven/plugins", plugin))
	var vs []string
	for _, e := range ents {
		if e.Name() != "debian" && !strings.HasSuffix(e.Name(), ".xml") {
			vs = append(vs, e.Name())
		}
	}
	if len(vs) == 0 {
		testenv.Missing(t, plugin+" in "+debianMavenRepo, "apt-get install libmaven-resources-plugin-java libmaven-compiler-plugin-java libmaven-jar-plugin-java libmaven-install-plugin-java libmaven-deploy-plugin-java libsurefire-java")
	}
	sort.Strings(vs)
	return vs[len(vs)-1]
}

// mavenProject writes a jar project depending on deps (group:artifact:version)
// and settings.xml sending every repository to the mirror at repo, with a
// local repository of its own; it returns the directory.
func mavenProject(t *testing.T, repo, artifact string, deps ...string) string {
	t.Helper()
	dir := t.TempDir()
	var d strings.Builder
	for _, dep := range deps {
		f := strings.Split(dep, ":")
		fmt.Fprintf(&d, "    <dependency><groupId>%s</groupId><artifactId>%s</artifactId><version>%s</version></dependency>\n", f[0], f[1], f[2])
	}
	var p strings.Builder
	for _, pl := range debianPlugins {
		fmt.Fprintf(&p, "      <plugin><groupId>org.apache.maven.plugins</groupId><artifactId>%s</artifactId><version>%s</version></plugin>\n", pl, pluginVersion(t, pl))
	}
	pom := fmt.Sprintf(`<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>com.corp</groupId>
  <artifactId>%s</artifactId>
  <version>1.0</version>
  <packaging>jar</packaging>
  <properties>
    <maven.compiler.source>17</maven.compiler.source>
    <maven.compiler.target>17</maven.compiler.target>
    <project.build.sourceEncoding>UTF-8</project.build.sourceEncoding>
  </properties>
  <dependencies>
%s  </dependencies>
  <build>
    <plugins>
%s    </plugins>
  </build>
</project>
`, artifact, d.String(), p.String())
	os.WriteFile(filepath.Join(dir, "pom.xml"), []byte(pom), 0o644)
	os.MkdirAll(filepath.Join(dir, "src/main/java/com/corp"), 0o755)
	os.WriteFile(filepath.Join(dir, "src/main/java/com/corp/App.java"), []byte("package com.corp;\n\npublic class App {\n  public static String name() { return \""+artifact+"\"; }\n}\n"), 0o644)
	mavenSettings(t, dir, repo)
	return dir
}

// mavenSettings (re)writes dir's settings.xml: every repository through
// repo, a fresh local repository.
func mavenSettings(t *testing.T, dir, repo string) {
	settings := fmt.Sprintf(`<settings>
  <localRepository>%s</localRepository>
  <mirrors><mirror><id>proxy</id><mirrorOf>*</mirrorOf><url>%s</url></mirror></mirrors>
</settings>
`, t.TempDir(), repo)
	os.WriteFile(filepath.Join(dir, "settings.xml"), []byte(settings), 0o644)
	os.WriteFile(filepath.Join(dir, "global-settings.xml"), []byte("<settings/>\n"), 0o644)
}

// mvn runs mvn in dir with its settings.xml (and an empty global one, so
// no http blocker applies).
func mvn(t *testing.T, dir string, args ...string) (string, error) {
	t.Helper()
	bin, ok := testenv.LookPath("mvn")
	if !ok {
		testenv.Missing(t, "mvn", "apt-get install maven")
	}
	cmd := exec.Command(bin, append([]string{"-B", "-s", "settings.xml", "-gs", "global-settings.xml"}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "MAVEN_OPTS=-Xmx256m")
	return output(t, cmd)
}

// mvn package through the mirror: two mirrored dependencies (one
// transitive) and Debian's plugins from the fake Central; again with the
// upstream down and an empty local repository; a tampered jar is refused
// and not stored.
func TestMavenPackageThroughTheMirror(t *testing.T) {
	testenv.Deadline(t, 6*time.Minute)
	pluginVersion(t, "maven-compiler-plugin")
	up := fakemaven.New(debianMavenRepo)
	up.Publish(fakemaven.Artifact{Group: "com.example", Artifact: "evil", Version: "1.0"})
	evilJar := fakemaven.JarPath("com.example", "evil", "1.0")
	up.Corrupt(evilJar, true)
	if err := up.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer up.Stop()
	store := t.TempDir()
	px := startProxy(t, map[string]string{"STORAGE_LOCAL_DIR": store,
		"MIRRORS": `[{"name":"maven","type":"maven","url":"` + up.URL() + `"}]`})
	repo := px.URL + "/maven"
	dir := mavenProject(t, repo, "app", "com.example:lib-a:1.0")
	out, err := mvn(t, dir, "package")
	if err != nil {
		t.Fatalf("mvn package through the mirror: %v\n%s", err, tailLines(out, 40))
	}
	for _, want := range []string{"com/example/lib-a/1.0/lib-a-1.0.jar", "com/example/lib-b/1.0/lib-b-1.0.jar"} {
		if _, err := os.Stat(filepath.Join(store, "mirror-dist", "maven", want)); err != nil {
			t.Errorf("%s was not stored", want)
		}
	}
	if strings.Contains(out, "Checksum validation failed") || strings.Contains(out, "checksum failed") {
		t.Errorf("mvn warned about checksums:\n%s", tailLines(out, 20))
	}

	up.Stop()
	mavenSettings(t, dir, repo) // an empty local repository
	if out, err := mvn(t, dir, "package"); err != nil {
		t.Errorf("mvn package with the upstream down, ~/.m2 empty: %v\n%s", err, tailLines(out, 40))
	}

	if err := up.Start(up.Addr()); err != nil {
		t.Fatal(err)
	}
	evil := mavenProject(t, repo, "victim", "com.example:evil:1.0")
	out, err = mvn(t, evil, "package")
	if err == nil {
		t.Errorf("mvn package with a tampered dependency succeeded:\n%s", tailLines(out, 20))
	}
	if _, err := os.Stat(filepath.Join(store, "mirror-dist", "maven", evilJar)); err == nil {
		t.Errorf("the tampered jar was stored")
	}
}

// mvn deploy of a private library (a release and a snapshot) with a
// token; a second project depends on both and builds; a second deploy of
// the release is refused; a read token cannot deploy.
func TestMavenDeploy(t *testing.T) {
	testenv.Deadline(t, 8*time.Minute)
	pluginVersion(t, "maven-deploy-plugin")
	up := fakemaven.New(debianMavenRepo)
	if err := up.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer up.Stop()
	px := startProxy(t, map[string]string{"STORAGE_LOCAL_DIR": t.TempDir(),
		"AUTH_TOKENS": `[{"name":"ci","token":"maven-write-token-0123456789","scopes":["read","write"]},{"name":"reader","token":"maven-read-token-0123456789","scopes":["read"]}]`,
		"MIRRORS":     `[{"name":"maven","type":"maven","url":"` + up.URL() + `","hosted":true,"public":true}]`})
	repo := px.URL + "/maven"
	deploy := func(version, token string) (string, error) {
		dir := mavenProject(t, repo, "private-lib")
		pom, _ := os.ReadFile(filepath.Join(dir, "pom.xml"))
		pom = []byte(strings.Replace(string(pom), "<version>1.0</version>", "<version>"+version+"</version>", 1))
		pom = []byte(strings.Replace(string(pom), "</project>", `  <distributionManagement>
    <repository><id>proxy</id><url>`+repo+`</url></repository>
    <snapshotRepository><id>proxy</id><url>`+repo+`</url></snapshotRepository>
  </distributionManagement>
</project>`, 1))
		os.WriteFile(filepath.Join(dir, "pom.xml"), pom, 0o644)
		settings, _ := os.ReadFile(filepath.Join(dir, "settings.xml"))
		settings = []byte(strings.Replace(string(settings), "</settings>", "  <servers><server><id>proxy</id><username>ci</username><password>"+token+"</password></server></servers>\n</settings>", 1))
		os.WriteFile(filepath.Join(dir, "settings.xml"), settings, 0o644)
		return mvn(t, dir, "deploy")
	}
	if out, err := deploy("1.0", "maven-read-token-0123456789"); err == nil {
		t.Errorf("mvn deploy with a read token succeeded:\n%s", tailLines(out, 20))
	}
	for _, v := range []string{"1.0", "2.0-SNAPSHOT"} {
		if out, err := deploy(v, "maven-write-token-0123456789"); err != nil {
			t.Fatalf("mvn deploy %s: %v\n%s", v, err, tailLines(out, 40))
		}
	}
	if out, err := deploy("1.0", "maven-write-token-0123456789"); err == nil || !strings.Contains(out, "409") {
		t.Errorf("a second deploy of release 1.0: %v\n%s", err, tailLines(out, 20))
	}
	_, _, meta := get(t, repo+"/com/corp/private-lib/maven-metadata.xml")
	for _, want := range []string{"<version>1.0</version>", "<version>2.0-SNAPSHOT</version>", "<release>1.0</release>"} {
		if !strings.Contains(string(meta), want) {
			t.Errorf("maven-metadata.xml lacks %s:\n%s", want, meta)
		}
	}
	for _, v := range []string{"1.0", "2.0-SNAPSHOT"} {
		app := mavenProject(t, repo, "app", "com.corp:private-lib:"+v, "com.example:lib-a:1.0")
		// Central, which the mirror stands for, has snapshots off: a
		// project using snapshots names a repository that has them on.
		pom, _ := os.ReadFile(filepath.Join(app, "pom.xml"))
		pom = []byte(strings.Replace(string(pom), "  <dependencies>", `  <repositories>
    <repository><id>corp</id><url>`+repo+`</url><snapshots><enabled>true</enabled></snapshots></repository>
  </repositories>
  <dependencies>`, 1))
		os.WriteFile(filepath.Join(app, "pom.xml"), pom, 0o644)
		if out, err := mvn(t, app, "package"); err != nil {
			t.Errorf("a project depending on private-lib %s: %v\n%s", v, err, tailLines(out, 40))
		}
	}
}

// The policies with the real mvn: a cooldown (the .pom's Last-Modified),
// a deny rule and a dated snapshot each change what a version range
// resolves to; a pinned version the cooldown hides fails the build.
func TestMavenPolicies(t *testing.T) {
	testenv.Deadline(t, 8*time.Minute)
	pluginVersion(t, "maven-compiler-plugin")
	up := fakemaven.New(debianMavenRepo) // lib-a 1.0 and 1.1, 2024-01-02
	up.Publish(fakemaven.Artifact{Group: "com.example", Artifact: "lib-a", Version: "1.2", Time: time.Now().Add(-time.Hour),
		Deps: []fakemaven.Dep{{Group: "com.example", Artifact: "lib-b", Version: "1.0"}}})
	up.Publish(fakemaven.Artifact{Group: "com.example", Artifact: "dated", Version: "1.0", Time: time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)})
	up.Publish(fakemaven.Artifact{Group: "com.example", Artifact: "dated", Version: "1.1", Time: time.Now().Add(-time.Hour)})
	// The snapshot is of yesterday: after Debian's plugin files (which the
	// fake serves with their own dates), before dated 1.1.
	snapshot := "/@" + time.Now().UTC().Add(-24*time.Hour).Format("2006-01-02")
	if err := up.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer up.Stop()
	// Debian's plugins are old files: the cooldown exempts nothing, and
	// they are all older than 3 days.
	px := startProxy(t, map[string]string{"STORAGE_LOCAL_DIR": t.TempDir(), "MIRRORS": `[` +
		`{"name":"maven","type":"maven","url":"` + up.URL() + `"},` +
		`{"name":"cool","type":"maven","url":"` + up.URL() + `","cooldown":"3d"},` +
		`{"name":"deny","type":"maven","url":"` + up.URL() + `","deny":["com.example:lib-a:1.2"]}]`})
	for _, c := range []struct{ repo, dep, want string }{
		{px.URL + "/maven", "com.example:lib-a:[1.0,2.0)", "lib-a/1.2"},
		{px.URL + "/cool", "com.example:lib-a:[1.0,2.0)", "lib-a/1.1"}, // 1.2 is an hour old
		{px.URL + "/deny", "com.example:lib-a:[1.0,2.0)", "lib-a/1.1"},
		{px.URL + "/maven" + snapshot, "com.example:dated:[1.0,2.0)", "dated/1.0"}, // 1.1 is newer than the snapshot
	} {
		dir := mavenProject(t, c.repo, "app", c.dep)
		out, err := mvn(t, dir, "compile")
		if err != nil || !strings.Contains(out, c.want+"/") {
			t.Errorf("%s, %s: %v; want %s\n%s", c.repo, c.dep, err, c.want, tailLines(out, 20))
		}
		if other := strings.Replace(c.want, "1.1", "1.2", 1); other != c.want && strings.Contains(out, other+"/") {
			t.Errorf("%s, %s: %s was downloaded", c.repo, c.dep, other)
		}
	}
	dir := mavenProject(t, px.URL+"/cool", "app", "com.example:lib-a:1.2")
	if out, err := mvn(t, dir, "compile"); err == nil || !strings.Contains(out, "403") {
		t.Errorf("a pinned version under the cooldown: %v\n%s", err, tailLines(out, 20))
	}
}

// prefetch of a resolved dependency list (mvn dependency:list's output)
// fills storage; a proxy with UPSTREAM_OFFLINE=true on it then serves mvn
// package with the upstream down and an empty local repository. (The
// build's plugins come into the same storage from an earlier build of a
// project without dependencies: dependency:list names no plugin.)
func TestMavenPrefetchThenOffline(t *testing.T) {
	testenv.Deadline(t, 6*time.Minute)
	pluginVersion(t, "maven-compiler-plugin")
	up := fakemaven.New(debianMavenRepo)
	if err := up.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer up.Stop()
	mirrors := `[{"name":"maven","type":"maven","url":"` + up.URL() + `"}]`
	store := t.TempDir()
	online := startProxy(t, map[string]string{"STORAGE_LOCAL_DIR": store, "MIRRORS": mirrors})
	if out, err := mvn(t, mavenProject(t, online.URL+"/maven", "tools"), "package"); err != nil {
		t.Fatalf("mvn package of a project without dependencies: %v\n%s", err, tailLines(out, 20))
	}
	online.Kill()
	list := filepath.Join(t.TempDir(), "deps.txt")
	os.WriteFile(list, []byte("[INFO] The following files have been resolved:\n[INFO]    com.example:lib-a:jar:1.0:compile\n[INFO]    com.example:lib-b:jar:1.0:compile\n"), 0o644)
	prefetchInto(t, store, mirrors, "maven", list, "prefetch: 4 files fetched, 0 already present, 0 failed")
	up.Stop()
	offline := startProxy(t, map[string]string{"STORAGE_LOCAL_DIR": store, "MIRRORS": mirrors, "UPSTREAM_OFFLINE": "true"})
	if out, err := mvn(t, mavenProject(t, offline.URL+"/maven", "app", "com.example:lib-a:1.0"), "package"); err != nil {
		t.Errorf("mvn package offline from prefetched storage: %v\n%s", err, tailLines(out, 30))
	}
}
