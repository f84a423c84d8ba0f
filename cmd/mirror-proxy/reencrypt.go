package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/schollz/progressbar/v3"

	"github.com/mirror-proxy/mirror-proxy/storage"
	"github.com/mirror-proxy/mirror-proxy/storage/crypt"
)

const reencryptUsage = `usage: mirror-proxy storage reencrypt

Rewrites every object stored before STORAGE_ENCRYPTION was switched on (metadata, mirrored
files, published packages) encrypted with its key. Replicas may keep serving meanwhile: they
read both forms. An interrupted run is resumed by running it again (encrypted objects are
skipped). Configured by the same environment as serve.
`

func storageCommand(args []string) int {
	if len(args) == 0 || args[0] != "reencrypt" || wantsHelp(args[1:]) {
		fmt.Print(reencryptUsage)
		if len(args) > 0 && args[0] == "reencrypt" {
			return 0
		}
		return 2
	}
	cfg, err := LoadConfig()
	if err != nil {
		fmt.Fprintln(os.Stderr, "mirror-proxy:", err)
		return 2
	}
	if cfg.Encryption == "" {
		fmt.Fprintln(os.Stderr, "mirror-proxy storage reencrypt: STORAGE_ENCRYPTION is not set")
		return 2
	}
	cfg.LogLevel = "warn"
	log := newLogger(cfg)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	n, err := reencrypt(ctx, cfg, log, os.Stderr)
	fmt.Fprintf(os.Stderr, "reencrypt: %d objects encrypted, %d already encrypted, %d failed\n", n.done, n.skipped, n.failed)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mirror-proxy storage reencrypt:", err)
		return 1
	}
	if n.failed > 0 {
		return 1
	}
	return 0
}

type reencryptCounts struct{ done, skipped, failed int }

// reencrypt encrypts every plaintext object under the three prefixes.
func reencrypt(ctx context.Context, cfg *Config, log *slog.Logger, progress io.Writer) (reencryptCounts, error) {
	var n reencryptCounts
	raw, _, err := openStore(ctx, cfg, log)
	if err != nil {
		return n, err
	}
	keys, err := encryptionKeys(ctx, cfg)
	if err != nil {
		return n, fmt.Errorf("STORAGE_ENCRYPTION: %w", err)
	}
	enc := crypt.New(raw, keys)
	var infos []storage.Info
	for _, p := range []string{cfg.MetaPrefix, cfg.DistPrefix, cfg.ArtifactPrefix} {
		if err := raw.List(ctx, p+"/", func(i storage.Info) error { infos = append(infos, i); return nil }); err != nil {
			return n, err
		}
	}
	bar := progressbar.NewOptions(len(infos), progressbar.OptionSetDescription("reencrypt"),
		progressbar.OptionSetWriter(progress), progressbar.OptionShowCount(), progressbar.OptionShowBytes(false),
		progressbar.OptionClearOnFinish())
	defer bar.Finish()
	for _, i := range infos {
		if ctx.Err() != nil {
			return n, ctx.Err()
		}
		_ = bar.Add(1)
		switch err := reencryptOne(ctx, raw, enc, i.Key); {
		case errors.Is(err, errAlreadyEncrypted), errors.Is(err, storage.ErrNotFound):
			n.skipped++
		case err != nil:
			n.failed++
			fmt.Fprintf(progress, "reencrypt: %s: %v\n", i.Key, err)
		default:
			n.done++
		}
	}
	return n, nil
}

var errAlreadyEncrypted = errors.New("already encrypted")

// reencryptOne rewrites key encrypted, unless it is already. An object
// that fits one write is replaced only if it did not change meanwhile
// (If-Match: an index being updated is not lost); a larger one is an
// immutable file, rewritten as it is.
func reencryptOne(ctx context.Context, raw, enc storage.Store, key string) error {
	rc, info, err := raw.Get(ctx, key, storage.Whole)
	if err != nil {
		return err
	}
	defer rc.Close()
	hdr := make([]byte, crypt.HeaderSize)
	n, err := io.ReadFull(rc, hdr)
	if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
		return err
	}
	if crypt.Encrypted(hdr[:n]) {
		return errAlreadyEncrypted
	}
	opts := storage.PutOptions{Size: info.Size, Digest: info.Digest}
	if info.Size <= 4<<20 {
		opts.IfMatch = info.ETag
	}
	err = enc.Put(ctx, key, io.MultiReader(bytes.NewReader(hdr[:n]), rc), opts)
	if errors.Is(err, storage.ErrPreconditionFailed) {
		return errAlreadyEncrypted // rewritten meanwhile (by a replica, encrypted)
	}
	return err
}
