package main

import (
	"os"
	"testing"
)

// docs/configuration.md's reference is what the code says: adding or
// changing a variable or a mirror type without `go generate
// ./cmd/mirror-proxy` fails here.
func TestConfigurationReferenceIsCurrent(t *testing.T) {
	b, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	want, err := withReference(string(b))
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != want {
		t.Error("docs/configuration.md is stale: run go generate ./cmd/mirror-proxy")
	}
}
