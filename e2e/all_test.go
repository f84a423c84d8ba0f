package e2e

// Every ecosystem registers itself, as in the binary: some tests here run
// a proxy in-process (cmd/mirror-proxy imports the same package).
import _ "github.com/mirror-proxy/mirror-proxy/mirror/all"
