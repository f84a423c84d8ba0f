package proxy

// ExpireMemory drops the memory cache, so that the next request reads
// storage (tests).
func (s *Server) ExpireMemory() { s.core.mem.Purge() }

// RenderedRoots is how many client roots mirror keeps rendered (tests).
func (s *Server) RenderedRoots(mirror string) int {
	e, ok := s.core.mem.Get(s.opts.MetaPrefix + "/" + mirror + "/packages.json")
	if !ok || e.parsed == nil {
		return 0
	}
	ri := e.parsed.(*rootInfo)
	ri.mu.Lock()
	defer ri.mu.Unlock()
	return len(ri.rendered)
}

// MemoryUsed is what the memory cache counts (tests).
func (s *Server) MemoryUsed() int64 { return s.core.mem.Used() }
