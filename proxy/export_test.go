package proxy

// ExpireMemory drops the memory cache, so that the next request reads
// storage (tests).
func (s *Server) ExpireMemory() { s.core.PurgeMemory() }

// RenderedRoots is how many client roots mirror keeps rendered (tests).
func (s *Server) RenderedRoots(mirror string) int {
	ri, ok := s.core.Peek(s.opts.MetaPrefix + "/" + mirror + "/packages.json").(*rootInfo)
	if !ok {
		return 0
	}
	ri.mu.Lock()
	defer ri.mu.Unlock()
	return len(ri.rendered)
}

// MemoryUsed is what the memory cache counts (tests).
func (s *Server) MemoryUsed() int64 { return s.core.MemoryUsed() }
