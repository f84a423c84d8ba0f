package s3

// CreateOnlySupported reports whether Check found that the store honours
// If-None-Match: * (true until Check runs).
func (s *Store) CreateOnlySupported() bool { return s.createOnly.Load() }
