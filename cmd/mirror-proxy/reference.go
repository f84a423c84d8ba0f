package main

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/kelseyhightower/envconfig"

	"github.com/mirror-proxy/mirror-proxy/mirror"
	"github.com/mirror-proxy/mirror-proxy/policy"
)

//go:generate go run . reference ../../docs/configuration.md

// The configuration reference in docs/configuration.md is generated from
// the envconfig tags of Config and the registered mirror types, between
// the markers below; TestConfigurationReferenceIsCurrent fails when it is
// stale (run go generate ./cmd/mirror-proxy).
const (
	refBegin = "<!-- BEGIN GENERATED: go generate ./cmd/mirror-proxy -->"
	refEnd   = "<!-- END GENERATED -->"
)

// reference renders the generated part of docs/configuration.md.
func reference() string {
	var b bytes.Buffer
	b.WriteString(refBegin + "\n\n| Variable | Default | Meaning |\n| --- | --- | --- |\n")
	_ = envconfig.Usagef("", &Config{}, &b, `{{range .}}| `+"`"+`{{usage_key .}}`+"`"+` | {{if eq (usage_key .) "MIRRORS"}}packagist and pypi (below){{else if usage_default .}}`+"`"+`{{usage_default .}}`+"`"+`{{else}}(none){{end}} | {{usage_description .}} |
{{end}}`)
	fmt.Fprintf(&b, "\nDefault `MIRRORS`: `%s`\n\n", DefaultMirrors)
	b.WriteString("| Mirror type | Default `url` (mirrors that do not host) | Default `ttl` | Hosts (`\"hosted\": true`) | Default file hosts |\n| --- | --- | --- | --- | --- |\n")
	for _, name := range mirror.Types() {
		t, _ := mirror.Lookup(name)
		url := "(none: `url` is required)"
		if t.DefaultURL != "" {
			url = "`" + t.DefaultURL + "`"
		}
		hosts := "no"
		if t.Hosts {
			hosts = "yes"
		}
		files := "(none)"
		if len(t.DefaultFileHosts) > 0 {
			files = "`" + strings.Join(t.DefaultFileHosts, "`, `") + "`"
		}
		fmt.Fprintf(&b, "| `%s` | %s | `%s` | %s | %s |\n", name, url, policy.Duration(t.DefaultTTL), hosts, files)
	}
	b.WriteString("\n" + refEnd)
	return b.String()
}

// withReference is doc with its generated part replaced by reference().
func withReference(doc string) (string, error) {
	i, j := strings.Index(doc, refBegin), strings.Index(doc, refEnd)
	if i < 0 || j < i {
		return "", fmt.Errorf("the markers %q and %q are missing", refBegin, refEnd)
	}
	return doc[:i] + reference() + doc[j+len(refEnd):], nil
}
