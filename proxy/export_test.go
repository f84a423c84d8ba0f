package proxy

import "github.com/mirror-proxy/mirror-proxy/mirror/composer"

// ExpireMemory drops the memory cache, so that the next request reads
// storage (tests).
func (s *Server) ExpireMemory() { s.core.PurgeMemory() }

// RenderedRoots is how many client roots mirror keeps rendered (tests).
func (s *Server) RenderedRoots(mirror string) int {
	return composer.RenderedRoots(s.core.Peek(s.opts.MetaPrefix + "/" + mirror + "/packages.json"))
}

// MemoryUsed is what the memory cache counts (tests).
func (s *Server) MemoryUsed() int64 { return s.core.MemoryUsed() }
