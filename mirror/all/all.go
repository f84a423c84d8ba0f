// Package all registers every ecosystem: import it for its side effect.
// Adding an ecosystem is its folder below mirror/ and one line here.
package all

import (
	_ "github.com/mirror-proxy/mirror-proxy/mirror/cargo"
	_ "github.com/mirror-proxy/mirror-proxy/mirror/composer"
	_ "github.com/mirror-proxy/mirror-proxy/mirror/conda"
	_ "github.com/mirror-proxy/mirror-proxy/mirror/cran"
	_ "github.com/mirror-proxy/mirror-proxy/mirror/gomod"
	_ "github.com/mirror-proxy/mirror-proxy/mirror/maven"
	_ "github.com/mirror-proxy/mirror-proxy/mirror/nix"
	_ "github.com/mirror-proxy/mirror-proxy/mirror/npm"
	_ "github.com/mirror-proxy/mirror-proxy/mirror/pypi"
	_ "github.com/mirror-proxy/mirror-proxy/mirror/rubygems"
)
