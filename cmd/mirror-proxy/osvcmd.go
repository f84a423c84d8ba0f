package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/schollz/progressbar/v3"

	"github.com/mirror-proxy/mirror-proxy/osv"
	"github.com/mirror-proxy/mirror-proxy/storage"
	"github.com/mirror-proxy/mirror-proxy/storage/crypt"
)

const osvUsage = `usage: mirror-proxy osv import --ecosystem ECOSYSTEM FILE.zip

Stores an OSV export (the <ECOSYSTEM>/all.zip of https://osv-vulnerabilities.storage.googleapis.com,
ECOSYSTEM as OSV names it: npm, PyPI, Packagist) in storage, for the mirrors with an advisories policy; every replica
loads it within OSV_REFRESH. The file is checked whole first: a truncated zip or a record that is
not valid is refused, naming the file and the record, and the data in storage stays as it was.
Configured by the same environment as serve.
`

func osvCommand(args []string) int {
	if len(args) == 0 || args[0] != "import" || wantsHelp(args[1:]) {
		fmt.Print(osvUsage)
		if len(args) > 0 && args[0] == "import" {
			return 0
		}
		return 2
	}
	eco, file := "", ""
	for i := 1; i < len(args); i++ {
		switch a := args[i]; {
		case a == "--ecosystem" && i+1 < len(args):
			eco = args[i+1]
			i++
		case strings.HasPrefix(a, "--ecosystem="):
			eco = strings.TrimPrefix(a, "--ecosystem=")
		default:
			file = a
		}
	}
	if eco == "" || file == "" {
		fmt.Fprint(os.Stderr, osvUsage)
		return 2
	}
	cfg, err := LoadConfig()
	if err != nil {
		fmt.Fprintln(os.Stderr, "mirror-proxy:", err)
		return 2
	}
	cfg.LogLevel = "warn"
	ctx := context.Background()
	st, err := configuredStore(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mirror-proxy osv import:", err)
		return 1
	}
	var bar *progressbar.ProgressBar
	progress := osv.Progress{
		Checked: func(done, total int) {
			if bar == nil {
				bar = progressbar.NewOptions(total, progressbar.OptionSetDescription("checking "+file),
					progressbar.OptionSetWriter(os.Stderr), progressbar.OptionShowCount(), progressbar.OptionClearOnFinish())
			}
			_ = bar.Set(done)
		},
		Storing: func(body io.Reader, size int64) io.Reader {
			if bar != nil {
				_ = bar.Finish()
			}
			bar = progressbar.NewOptions64(size, progressbar.OptionSetDescription("storing"),
				progressbar.OptionSetWriter(os.Stderr), progressbar.OptionShowBytes(true), progressbar.OptionClearOnFinish())
			r := progressbar.NewReader(body, bar)
			return &r
		},
	}
	n, err := osv.Import(ctx, st, storage.Join(cfg.MetaPrefix, "osv"), eco, file, progress)
	if bar != nil {
		_ = bar.Finish()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "mirror-proxy osv import:", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "osv import: %d %s records stored from %s\n", n, eco, file)
	return 0
}

// configuredStore is the storage serve uses (client-side encryption
// included), without the server.
func configuredStore(ctx context.Context, cfg *Config) (storage.Store, error) {
	log := newLogger(cfg)
	st, _, err := openStore(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	if cfg.Encryption != "" {
		keys, err := encryptionKeys(ctx, cfg)
		if err != nil {
			return nil, fmt.Errorf("STORAGE_ENCRYPTION: %w", err)
		}
		st = crypt.New(st, keys)
	}
	return st, nil
}
