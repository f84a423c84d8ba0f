//go:build !unix

package proxy

func freeBytes(string) int64 { return -1 }
