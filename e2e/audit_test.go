package e2e

import (
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mirror-proxy/mirror-proxy/audit"
	"github.com/mirror-proxy/mirror-proxy/internal/fakepackagist"
	"github.com/mirror-proxy/mirror-proxy/internal/testenv"
)

// The audit trail across two replicas on one bucket: publishes (one
// refused as a reused version), a delete, a policy refusal and failed
// authentications, each recorded once by the replica that served it;
// one replica keeps its batch until SIGTERM (AUDIT_FLUSH of an hour),
// the other writes every 200 ms; `mirror-proxy audit` then lists every
// event exactly once, with token names and never a token.
func TestAuditTrailAcrossReplicas(t *testing.T) {
	testenv.Deadline(t, 3*time.Minute)
	s3 := testenv.StartS3(t)
	bucket := s3.NewBucket(t)
	pack := fakepackagist.New()
	if err := pack.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer pack.Stop()
	env := map[string]string{
		"STORAGE_SOURCE": "s3", "STORAGE_AWS_BUCKET": bucket, "STORAGE_AWS_ARGS": s3.ArgsJSON(),
		"MIRRORS":     `[{"name":"packagist","type":"composer","url":"` + pack.URL() + `","hosted":true,"deny":["acme/foo:1.1.0"]}]`,
		"AUTH_TOKENS": hostedTokensJSON(), "AUDIT_PREFIX": "audit-trail/",
	}
	with := func(kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range env {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	a := startProxy(t, with("REPLICA_ID", "replica-a", "AUDIT_FLUSH", "1h"))
	b := startProxy(t, with("REPLICA_ID", "replica-b", "AUDIT_FLUSH", "200ms"))

	// 1. publish (a), 2. the same version with other bytes (b: 409),
	// 3. publish with a read token (a: 403), 4. no token (b: 401),
	// 5. a denied dist (a: 403), 6. delete (b).
	if code, body := curlPublish(t, a.URL+"/packagist", e2eWrite, "acme/private-lib", "1.0.0", privateLibZip(t, "1.0.0")); code != 201 {
		t.Fatalf("publish: %d %s", code, body)
	}
	if code, body := curlPublish(t, b.URL+"/packagist", e2eWrite, "acme/private-lib", "1.0.0", privateLibZip(t, "1.0.1")); code != 409 {
		t.Fatalf("republish with other bytes: %d %s", code, body)
	}
	if code, body := curlPublish(t, a.URL+"/packagist", e2eRead, "acme/private-lib", "1.1.0", privateLibZip(t, "1.1.0")); code != 403 {
		t.Fatalf("publish with a read token: %d %s", code, body)
	}
	if code, _, body := get(t, b.URL+"/packagist/packages.json"); code != 401 {
		t.Fatalf("no token: %d %s", code, body)
	}
	ref := sha1.Sum([]byte("foo1.1"))
	code, _, body := get(t, a.URL+"/packagist/zipball/acme/foo/1.1.0/ref"+hex.EncodeToString(ref[:])+".zip",
		"Authorization", "Bearer "+e2eRead)
	if code != 403 {
		t.Fatalf("denied dist: %d %s", code, body)
	}
	req, _ := http.NewRequest(http.MethodDelete, b.URL+"/packagist/packages/upload/acme/private-lib/1.0.0", nil)
	req.SetBasicAuth("token", e2eWrite)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 && resp.StatusCode != 204 {
		t.Fatalf("delete: %d", resp.StatusCode)
	}

	// Replica b counted its publish and its refusal.
	_, _, metrics := get(t, b.URL+"/metrics")
	for _, want := range []string{`mirror_publishes_total{action="publish",mirror="packagist",outcome="failed"} 1`,
		`mirror_publishes_total{action="delete",mirror="packagist",outcome="ok"} 1`, `mirror_refusals_total{mirror="packagist",reason="auth"} 1`} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("replica b's metrics lack %s", want)
		}
	}
	// Every event is logged at once on the audit logger (stdout).
	if !strings.Contains(a.Log(), "logger=audit") || !strings.Contains(a.Log(), "action=publish") {
		t.Errorf("replica a logged no audit event:\n%s", tailLines(a.Log(), 20))
	}
	a.Stop() // SIGTERM: its batch (an hour's flush interval) is written in shutdown

	want := []string{
		"replica-a publish ok 201 acme/private-lib 1.0.0 ci",
		"replica-b publish failed 409 acme/private-lib 1.0.0 ci",
		"replica-a auth denied 403   dev", // refused at authorization, before the upload is read
		"replica-b auth denied 401   ",
		"replica-a refuse denied 403 acme/foo 1.1.0 dev",
		"replica-b delete ok 200 acme/private-lib 1.0.0 ci",
	}
	var got []string
	var events []audit.Event
	deadline := time.Now().Add(20 * time.Second)
	for {
		events = auditEvents(t, with(), "--since", "1h", "--json")
		got = got[:0]
		for _, e := range events {
			got = append(got, strings.Join([]string{e.Replica, e.Action, e.Outcome, strconv.Itoa(e.Status), e.Package, e.Version, e.Token}, " "))
		}
		if len(got) >= len(want) || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond) // replica b's batches
	}
	t.Logf("events:\n%s", strings.Join(got, "\n"))
	wantSorted, gotSorted := append([]string(nil), want...), append([]string(nil), got...)
	sort.Strings(wantSorted)
	sort.Strings(gotSorted)
	if strings.Join(wantSorted, "\n") != strings.Join(gotSorted, "\n") {
		t.Errorf("audit events:\n%s\nwant (in any order):\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, e := range events {
		if e.Client != "127.0.0.1" || e.Mirror != "packagist" || e.Time.IsZero() || e.RequestID == "" {
			t.Errorf("event without its client, mirror, time or request id: %+v", e)
		}
		if e.Action == audit.Refuse && e.Reason != "deny" {
			t.Errorf("refusal's reason: %q, want deny", e.Reason)
		}
	}
	// The table, filtered; and no token anywhere.
	table := auditOutput(t, with(), "--since", "1h", "--package", "acme/foo")
	if !strings.Contains(table, "TIME") || !strings.Contains(table, "acme/foo") || strings.Contains(table, "acme/private-lib") {
		t.Errorf("audit --package acme/foo:\n%s", table)
	}
	all := auditOutput(t, with(), "--json") + a.Log() + b.Log()
	for _, secret := range []string{e2eWrite, e2eRead} {
		if strings.Contains(all, secret) {
			t.Errorf("a token appears in the audit trail or logs")
		}
	}
	// The objects are create-only JSON lines under the trimmed prefix.
	for _, k := range s3.Keys(t, bucket) {
		if strings.HasPrefix(k, "audit-trail/") && !strings.HasPrefix(k, "audit-trail/"+time.Now().UTC().Format("2006/01/02")+"/replica-") {
			t.Errorf("audit object %s: want audit-trail/YYYY/MM/DD/<replica>-<seq>.jsonl", k)
		}
	}
}

// auditOutput runs mirror-proxy audit with the proxies' environment.
func auditOutput(t *testing.T, env map[string]string, args ...string) string {
	t.Helper()
	cmd := exec.Command(proxyBin, append([]string{"audit"}, args...)...)
	cmd.Env = append(os.Environ(), "AWS_EC2_METADATA_DISABLED=true")
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("mirror-proxy audit %v: %v\n%s", args, err, out)
	}
	return string(out)
}

func auditEvents(t *testing.T, env map[string]string, args ...string) []audit.Event {
	var out []audit.Event
	for _, line := range strings.Split(strings.TrimSpace(auditOutput(t, env, args...)), "\n") {
		if line == "" {
			continue
		}
		var e audit.Event
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("audit --json line %q: %v", line, err)
		}
		out = append(out, e)
	}
	return out
}
