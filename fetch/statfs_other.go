//go:build !unix

package fetch

func freeBytes(string) int64 { return -1 }
