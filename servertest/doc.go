// Package servertest holds the tests of the whole server: package proxy
// wired with every registered ecosystem, on local storage, against the
// fake upstreams in internal/ (security, faults, tokens, hosting,
// leases, the warm path's benchmark). It has no code of its own; each
// ecosystem's contract is in mirror/mirrortest, and the real clients are
// in e2e.
package servertest
