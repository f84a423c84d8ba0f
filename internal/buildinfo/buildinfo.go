// Package buildinfo says which build of mirror-proxy is running, from the
// module's build information (the version of a tagged module, else the
// VCS revision Go stamps into the binary).
package buildinfo

import (
	"runtime"
	"runtime/debug"
)

// Info is a build's identity.
type Info struct {
	Version   string // the module's version ("(devel)" for a build from a checkout)
	Revision  string // the VCS commit ("" when unknown), "+dirty" when modified
	GoVersion string
}

// Read returns the running binary's build information.
func Read() Info {
	i := Info{Version: "(devel)", GoVersion: runtime.Version()}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return i
	}
	if bi.Main.Version != "" {
		i.Version = bi.Main.Version
	}
	modified := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			i.Revision = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if modified && i.Revision != "" {
		i.Revision += "+dirty"
	}
	return i
}

// String is "mirror-proxy <version> (<revision>, <go version>)".
func (i Info) String() string {
	rev := i.Revision
	if rev == "" {
		rev = "unknown revision"
	}
	return "mirror-proxy " + i.Version + " (" + rev + ", " + i.GoVersion + ")"
}
