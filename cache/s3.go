package cache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// S3Remote is a Remote in an S3-compatible bucket (AWS S3, MinIO,
// VersityGW, Ceph RGW, ...), its objects under one key prefix:
// <prefix>/blobs/<hex>, <prefix>/memo/<keyhex>, <prefix>/records/<group>/<name>.
//
// Where and as whom it connects comes from the environment, never from the
// URL, so credentials never reach keys, logs or records:
//
//	AWS_ENDPOINT_URL       the server, e.g. http://127.0.0.1:7070 (path-style
//	                       requests); unset means AWS S3 itself, over HTTPS
//	AWS_REGION             the region (default us-east-1)
//	AWS_ACCESS_KEY_ID,     the credentials; if unset, the profile
//	AWS_SECRET_ACCESS_KEY  $AWS_PROFILE (default "default") of
//	                       $AWS_SHARED_CREDENTIALS_FILE (default
//	                       ~/.aws/credentials)
//
// First-writer-wins memo entries are conditional PUTs with
// "If-None-Match: *": the server refuses to create an object that exists
// (412), atomically. AWS S3, MinIO and VersityGW (which checks the
// condition again under its per-object publish lock) support it; a server
// that ignores the header would silently make the last writer win, so
// check yours with the tests of this package before sharing a bucket.
type S3Remote struct {
	client *minio.Client
	bucket string
	prefix string // "" or ending in "/"
	url    string
}

// OpenS3 connects to the remote named by rawURL, "s3://bucket" or
// "s3://bucket/prefix", and checks that the bucket can be reached with the
// credentials found (see S3Remote).
func OpenS3(ctx context.Context, rawURL string) (*S3Remote, error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme != "s3" || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("cache: remote %q: want s3://bucket or s3://bucket/prefix (credentials come from the environment, not the URL)", redactURL(rawURL))
	}
	prefix := strings.Trim(u.Path, "/")
	if prefix != "" {
		prefix += "/"
	}
	endpoint, secure, lookup := "s3.amazonaws.com", true, minio.BucketLookupAuto
	if e := os.Getenv("AWS_ENDPOINT_URL"); e != "" {
		eu, err := url.Parse(e)
		if err != nil || (eu.Scheme != "http" && eu.Scheme != "https") || eu.Host == "" {
			return nil, fmt.Errorf("cache: AWS_ENDPOINT_URL %q: want http://host:port or https://host:port", redactURL(e))
		}
		endpoint, secure, lookup = eu.Host, eu.Scheme == "https", minio.BucketLookupPath
	}
	region := os.Getenv("AWS_REGION")
	if region == "" {
		region = "us-east-1"
	}
	creds := credentials.NewChainCredentials([]credentials.Provider{
		&credentials.EnvAWS{},
		&credentials.FileAWSCredentials{},
	})
	client, err := minio.New(endpoint, &minio.Options{Creds: creds, Secure: secure, Region: region, BucketLookup: lookup})
	if err != nil {
		return nil, fmt.Errorf("cache: remote s3://%s: %w", u.Host, err)
	}
	r := &S3Remote{client: client, bucket: u.Host, prefix: prefix, url: "s3://" + u.Host + "/" + strings.TrimSuffix(prefix, "/")}
	r.url = strings.TrimSuffix(r.url, "/")
	ok, err := client.BucketExists(ctx, r.bucket)
	if err != nil {
		return nil, fmt.Errorf("cache: remote %s at %s: %w", r, endpoint, s3Err(err))
	}
	if !ok {
		return nil, fmt.Errorf("cache: remote %s: bucket %s does not exist at %s", r, r.bucket, endpoint)
	}
	return r, nil
}

// redactURL drops any user information from a URL given in a message.
func redactURL(s string) string {
	if u, err := url.Parse(s); err == nil && u.User != nil {
		u.User = nil
		return u.String()
	}
	if i := strings.Index(s, "@"); i >= 0 {
		return "..." + s[i:]
	}
	return s
}

// String returns "s3://bucket/prefix".
func (r *S3Remote) String() string { return r.url }

func (r *S3Remote) key(name string) string { return r.prefix + name }

// s3Err turns a client error into one that keeps the server's code and
// message (which never hold the secret key) and reads as fs.ErrNotExist
// for an absent object.
func s3Err(err error) error {
	resp := minio.ToErrorResponse(err)
	switch {
	case resp.Code == "NoSuchKey" || resp.StatusCode == http.StatusNotFound && resp.Code != "NoSuchBucket":
		return fmt.Errorf("%w (%s)", fs.ErrNotExist, resp.Code)
	case resp.Code != "":
		return fmt.Errorf("%s: %s", resp.Code, resp.Message)
	}
	return err
}

// Get opens the object name.
func (r *S3Remote) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	obj, err := r.client.GetObject(ctx, r.bucket, r.key(name), minio.GetObjectOptions{})
	if err != nil {
		return nil, s3Err(err)
	}
	// Stat sends the request, so that an absent object is an error here
	// rather than at the first Read.
	if _, err := obj.Stat(); err != nil {
		obj.Close()
		return nil, s3Err(err)
	}
	return readerErrs{obj}, nil
}

// readerErrs maps the client's read errors as s3Err does.
type readerErrs struct{ *minio.Object }

func (r readerErrs) Read(p []byte) (int, error) {
	n, err := r.Object.Read(p)
	if err != nil && err != io.EOF {
		err = s3Err(err)
	}
	return n, err
}

// Stat describes the object name.
func (r *S3Remote) Stat(ctx context.Context, name string) (RemoteObject, error) {
	info, err := r.client.StatObject(ctx, r.bucket, r.key(name), minio.StatObjectOptions{})
	if err != nil {
		return RemoteObject{}, s3Err(err)
	}
	return RemoteObject{Name: name, Size: info.Size, Modified: info.LastModified}, nil
}

// Put stores size bytes from rd as name.
func (r *S3Remote) Put(ctx context.Context, name string, rd io.Reader, size int64) error {
	_, err := r.client.PutObject(ctx, r.bucket, r.key(name), rd, size, minio.PutObjectOptions{ContentType: "application/octet-stream"})
	if err != nil {
		return s3Err(err)
	}
	return nil
}

// Create stores data as name unless it exists, with a conditional PUT
// ("If-None-Match: *").
func (r *S3Remote) Create(ctx context.Context, name string, data []byte) (bool, error) {
	opts := minio.PutObjectOptions{ContentType: "application/octet-stream"}
	opts.SetMatchETagExcept("*")
	_, err := r.client.PutObject(ctx, r.bucket, r.key(name), bytes.NewReader(data), int64(len(data)), opts)
	if err == nil {
		return true, nil
	}
	resp := minio.ToErrorResponse(err)
	// 412: the object exists. 409 (ConditionalRequestConflict): another
	// conditional write to it is under way; the caller reads what won.
	if resp.StatusCode == http.StatusPreconditionFailed || resp.Code == "PreconditionFailed" ||
		resp.StatusCode == http.StatusConflict || resp.Code == "ConditionalRequestConflict" {
		return false, nil
	}
	return false, s3Err(err)
}

// List calls fn for every object under prefix, in key order.
func (r *S3Remote) List(ctx context.Context, prefix string, fn func(RemoteObject) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for o := range r.client.ListObjects(ctx, r.bucket, minio.ListObjectsOptions{Prefix: r.key(prefix), Recursive: true}) {
		if o.Err != nil {
			return s3Err(o.Err)
		}
		if err := fn(RemoteObject{Name: strings.TrimPrefix(o.Key, r.prefix), Size: o.Size, Modified: o.LastModified}); err != nil {
			return err
		}
	}
	return ctx.Err()
}

// Delete removes name.
func (r *S3Remote) Delete(ctx context.Context, name string) error {
	err := r.client.RemoveObject(ctx, r.bucket, r.key(name), minio.RemoveObjectOptions{})
	if err != nil && !errors.Is(s3Err(err), fs.ErrNotExist) {
		return s3Err(err)
	}
	return nil
}
