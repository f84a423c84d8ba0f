package audit

import "context"

// Note is what a write request did, as its handler says (Noted); the
// server records the request's one event from it when the request ends.
type Note struct {
	Action, Package, Version string
}

type noteKey struct{}

// WithNote gives ctx a Note for the handler to fill.
func WithNote(ctx context.Context) (context.Context, *Note) {
	n := &Note{}
	return context.WithValue(ctx, noteKey{}, n), n
}

// Noted says what the request of ctx does (action, package, version); a
// request without a Note (not audited) ignores it. The last word counts.
func Noted(ctx context.Context, action, pkg, version string) {
	if n, ok := ctx.Value(noteKey{}).(*Note); ok {
		n.Action, n.Package, n.Version = action, pkg, version
	}
}
