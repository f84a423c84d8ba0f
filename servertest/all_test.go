package servertest_test

// Every ecosystem registers itself, as in the binary (cmd/mirror-proxy
// imports the same package).
import _ "github.com/mirror-proxy/mirror-proxy/mirror/all"
