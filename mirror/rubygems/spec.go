package rubygems

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Spec is what the compact index needs of a gem's specification.
type Spec struct {
	Name, Version, Platform string
	Deps                    []Dep // runtime dependencies
	Ruby, RubyGems          string
}

// Dep is a runtime dependency and its requirement ("&"-joined).
type Dep struct{ Name, Req string }

// File is the spec's gem file name.
func (s Spec) File() string { return s.Name + "-" + s.FullVersion() + ".gem" }

// FullVersion is the version with -<platform> unless it is ruby.
func (s Spec) FullVersion() string {
	if s.Platform == "" || s.Platform == "ruby" {
		return s.Version
	}
	return s.Version + "-" + s.Platform
}

// InfoLine is the spec's /info line, for a gem whose sha256 is sum.
func (s Spec) InfoLine(sum string) string {
	var deps []string
	for _, d := range s.Deps {
		deps = append(deps, d.Name+":"+d.Req)
	}
	reqs := "checksum:" + sum
	if s.Ruby != "" && s.Ruby != ">= 0" {
		reqs += ",ruby:" + s.Ruby
	}
	if s.RubyGems != "" && s.RubyGems != ">= 0" {
		reqs += ",rubygems:" + s.RubyGems
	}
	return s.FullVersion() + " " + strings.Join(deps, ",") + "|" + reqs
}

// Bounds on a gem's metadata.
const maxMetadata = 4 << 20

// ReadSpec reads the specification of a .gem (a tar whose metadata.gz is
// the YAML of Gem::Specification, Ruby's object tags and all).
func ReadSpec(r io.Reader) (Spec, error) {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return Spec{}, errors.New("no metadata.gz: not a gem")
		}
		if err != nil {
			return Spec{}, fmt.Errorf("not a gem (a tar): %v", err)
		}
		if h.Name != "metadata.gz" {
			continue
		}
		zr, err := gzip.NewReader(tr)
		if err != nil {
			return Spec{}, fmt.Errorf("metadata.gz: %v", err)
		}
		b, err := io.ReadAll(io.LimitReader(zr, maxMetadata+1))
		if err != nil || len(b) > maxMetadata {
			return Spec{}, fmt.Errorf("metadata.gz: not gzip, or larger than %d bytes", maxMetadata)
		}
		return parseSpec(b)
	}
}

// parseSpec reads the YAML of a Gem::Specification.
func parseSpec(b []byte) (Spec, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(b, &root); err != nil {
		return Spec{}, fmt.Errorf("metadata: %v", err)
	}
	if len(root.Content) == 0 || root.Content[0].Kind != yaml.MappingNode {
		return Spec{}, errors.New("metadata: not a specification")
	}
	m := root.Content[0]
	s := Spec{Name: scalar(get(m, "name")), Version: scalar(get(get(m, "version"), "version")), Platform: scalar(get(m, "platform"))}
	if !ValidName(s.Name) || s.Version == "" || strings.ContainsAny(s.Version+s.Platform, " /,|:&") {
		return Spec{}, fmt.Errorf("metadata: %q %q is not a gem name and version", s.Name, s.Version)
	}
	s.Ruby = requirement(get(m, "required_ruby_version"))
	s.RubyGems = requirement(get(m, "required_rubygems_version"))
	if deps := get(m, "dependencies"); deps != nil && deps.Kind == yaml.SequenceNode {
		for _, d := range deps.Content {
			if scalar(get(d, "type")) == ":development" {
				continue
			}
			name := scalar(get(d, "name"))
			if !ValidName(name) {
				return Spec{}, fmt.Errorf("metadata: dependency %q is not a gem name", name)
			}
			s.Deps = append(s.Deps, Dep{Name: name, Req: requirement(get(d, "requirement"))})
		}
	}
	sort.Slice(s.Deps, func(i, j int) bool { return s.Deps[i].Name < s.Deps[j].Name })
	return s, nil
}

// get is the value of key in a mapping node (nil: none).
func get(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

func scalar(n *yaml.Node) string {
	if n == nil || n.Kind != yaml.ScalarNode {
		return ""
	}
	return n.Value
}

// requirement writes a Gem::Requirement as the compact index does:
// "op version" pairs joined with "&" (">= 1.0&< 2").
func requirement(n *yaml.Node) string {
	reqs := get(n, "requirements")
	if reqs == nil || reqs.Kind != yaml.SequenceNode {
		return ">= 0"
	}
	var parts []string
	for _, r := range reqs.Content {
		if r.Kind != yaml.SequenceNode || len(r.Content) != 2 {
			continue
		}
		op, v := scalar(r.Content[0]), scalar(get(r.Content[1], "version"))
		if op != "" && v != "" && !strings.ContainsAny(op+v, ",|&:") {
			parts = append(parts, op+" "+v)
		}
	}
	if len(parts) == 0 {
		return ">= 0"
	}
	return strings.Join(parts, "&")
}
