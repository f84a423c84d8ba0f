// Package gomod mirrors Go modules: the GOPROXY protocol
// (https://go.dev/ref/mod#goproxy-protocol) in front of a module proxy,
// with every .mod and .zip verified against the checksum database before
// it is stored, and the checksum database itself served through the
// mirror (https://go.dev/ref/mod#checksum-database).
package gomod

import (
	"errors"
	"strings"

	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"
)

// Request is what a GOPROXY request names.
type Request struct {
	Module  string // the module path, unescaped
	Escaped string // the module path as the protocol escapes it (!-lowered upper case)
	Kind    string // "list", "latest", "info", "mod" or "zip"
	Version string // canonical, for info, mod and zip
}

// errNotGoProxyPath: the path is not one the protocol defines.
var errNotGoProxyPath = errors.New("not a module proxy path: expected <module>/@v/list, <module>/@v/<version>.info|.mod|.zip or <module>/@latest")

// ParseRequest reads a path under the mirror's mount (without the leading
// "/"): "<escaped module>/@v/list", "<escaped module>/@v/<escaped
// version>.info|.mod|.zip" or "<escaped module>/@latest". The module path
// and version are checked as the go command checks them; versions must be
// canonical (the go command resolves queries with list and @latest).
func ParseRequest(p string) (Request, error) {
	var r Request
	switch {
	case strings.HasSuffix(p, "/@latest"):
		r.Escaped, r.Kind = strings.TrimSuffix(p, "/@latest"), "latest"
	case strings.HasSuffix(p, "/@v/list"):
		r.Escaped, r.Kind = strings.TrimSuffix(p, "/@v/list"), "list"
	default:
		i := strings.LastIndex(p, "/@v/")
		if i < 0 {
			return r, errNotGoProxyPath
		}
		r.Escaped = p[:i]
		file := p[i+len("/@v/"):]
		dot := strings.LastIndexByte(file, '.')
		if dot < 0 {
			return r, errNotGoProxyPath
		}
		r.Kind = file[dot+1:]
		if r.Kind != "info" && r.Kind != "mod" && r.Kind != "zip" {
			return r, errNotGoProxyPath
		}
		v, err := module.UnescapeVersion(file[:dot])
		if err != nil {
			return r, err
		}
		r.Version = v
	}
	m, err := module.UnescapePath(r.Escaped)
	if err != nil {
		return r, err
	}
	r.Module = m
	if err := module.CheckPath(m); err != nil {
		return r, err
	}
	if r.Version != "" {
		if semver.Canonical(r.Version) != strings.TrimSuffix(r.Version, "+incompatible") {
			return r, errors.New("version " + r.Version + " is not canonical")
		}
		if err := module.Check(m, r.Version); err != nil {
			return r, err
		}
	}
	return r, nil
}

// Path is the request's path under the mount, escaped as the protocol
// escapes it (and as storage keys hold it: case-safe on any store).
func (r Request) Path() string {
	switch r.Kind {
	case "list":
		return r.Escaped + "/@v/list"
	case "latest":
		return r.Escaped + "/@latest"
	}
	v, _ := module.EscapeVersion(r.Version)
	return r.Escaped + "/@v/" + v + "." + r.Kind
}
