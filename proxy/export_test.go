package proxy

// ExpireMemory drops the memory cache, so that the next request reads
// storage (tests).
func (s *Server) ExpireMemory() { s.core.mem.Purge() }
