package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/dsbuild/dsbuild/cache"
	"github.com/urfave/cli/v3"
)

// remoteFlag names the shared store tier every command that opens the
// store puts behind it.
var remoteFlag = &cli.StringFlag{Name: "remote", Usage: "shared store `s3://BUCKET/PREFIX` behind the --cache directory (default $DSBUILD_REMOTE; server from $AWS_ENDPOINT_URL, credentials from the AWS_* variables or ~/.aws/credentials)"}

// remoteURL is --remote, else $DSBUILD_REMOTE; "" means no remote.
func remoteURL(cmd *cli.Command) string {
	if u := cmd.String("remote"); u != "" {
		return u
	}
	return os.Getenv("DSBUILD_REMOTE")
}

// openStore opens the store named by --cache (or the default), with the
// shared tier named by --remote behind it if there is one.
func openStore(cmd *cli.Command) (*cache.Store, error) { return openStoreWith(cmd, cache.Open) }

// openStoreExclusive is openStore with the exclusive lock (gc, repair). The
// lock is the local directory's: no lock spans the machines sharing a
// remote (see cache.DefaultRemoteGrace).
func openStoreExclusive(cmd *cli.Command) (*cache.Store, error) {
	return openStoreWith(cmd, cache.OpenExclusive)
}

func openStoreWith(cmd *cli.Command, open func(string) (*cache.Store, error)) (*cache.Store, error) {
	url := remoteURL(cmd)
	if url != "" && !strings.HasPrefix(url, "s3://") {
		return nil, usageError{fmt.Sprintf("--remote/DSBUILD_REMOTE %q: want s3://BUCKET or s3://BUCKET/PREFIX", url)}
	}
	store, err := open(cacheDir(cmd))
	if err != nil || url == "" {
		return store, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := cache.OpenS3(ctx, url)
	if err != nil {
		store.Close()
		return nil, err
	}
	store.SetRemote(r)
	return store, nil
}

// printRemoteVerify prints the remote's part of a verify report and
// returns how many problems it holds.
func printRemoteVerify(w io.Writer, rep *cache.VerifyReport, remote cache.Remote) int {
	if rep == nil {
		return 0
	}
	for _, p := range rep.Problems {
		fmt.Fprintln(w, p)
	}
	fmt.Fprintf(w, "checked %d blobs, %d memo entries, %d build records on %s: %d problems\n", rep.Blobs, rep.MemoEntries, rep.Records, remote, len(rep.Problems))
	return len(rep.Problems)
}

// printRemoteGC prints what gc removed from the remote.
func printRemoteGC(w io.Writer, rep *cache.GCReport, remote cache.Remote) {
	if rep == nil {
		return
	}
	fmt.Fprintf(w, "removed from %s: %d build records, %d memo entries, %d blobs (%s); kept everything younger than %s\n",
		remote, rep.RecordsRemoved, rep.MemoRemoved, rep.BlobsRemoved, humanBytes(rep.BytesFreed), cache.DefaultRemoteGrace)
}
