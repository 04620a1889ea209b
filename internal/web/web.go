// Package web is rydes's dashboard: two pages, embedded in the binary, with
// no build step and nothing loaded from elsewhere.
//
//   - / asks for a ride (POST /v1/rfqs), then follows the request live over
//     server-sent events (GET /v1/rfqs/{id}/events): the quotes best first,
//     the roster of the providers asked, a countdown to the deadline, the
//     final status, and a Cancel button while it is open.
//   - /providers asks for the admin key (kept in the tab's sessionStorage)
//     and lists the providers with their state, queue and stats.
//
// Handler serves the pages and their assets. Every answer is addressed by
// the checksum of its content: pages are sent with Cache-Control: no-cache
// and an ETag, so a browser revalidates them and gets 304 when they did not
// change; the pages name their assets by content hash
// (/assets/app.3f9c2a1b7d04.js), which are sent as immutable for a year.
// The plain names (/assets/app.js) are served too, revalidated like the
// pages. Every answer carries a Content-Security-Policy that allows only
// this origin (no inline script or style), and X-Content-Type-Options:
// nosniff.
package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"sort"
	"strings"
	"sync"
	"time"
)

//go:embed static
var static embed.FS

// ContentSecurityPolicy is sent with every answer: scripts, styles, images,
// fonts and connections from this origin only; no inline code, no plugins,
// no framing, forms posting only here.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"font-src 'self'; connect-src 'self'; manifest-src 'self'; form-action 'self'; base-uri 'none'; " +
	"frame-ancestors 'none'"

// Cache-Control values.
const (
	cacheRevalidate = "no-cache"
	cacheImmutable  = "public, max-age=31536000, immutable"
)

// contentTypes maps the extensions of the embedded files to their media
// types; a file of another extension is a build bug (site panics).
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".svg":  "image/svg+xml",
}

// pages maps the paths of the pages to their files in static/.
var pages = map[string]string{
	"/":          "index.html",
	"/providers": "providers.html",
}

// file is one answer the handler can give.
type file struct {
	body        []byte
	etag        string // strong, quoted
	contentType string
	cache       string
}

// Handler returns the handler of the dashboard. It serves GET and HEAD of
// /, /providers and /assets/*; any other path gets 404 and any other
// method 405. Mount it on exactly those paths (in a Go 1.22 mux:
// "GET /{$}", "GET /providers" and "GET /assets/"), so that the API's own
// answers for unknown routes stay what they are.
func Handler() http.Handler { return handler() }

var handler = sync.OnceValue(func() http.Handler {
	files, err := build(static)
	if err != nil {
		panic(fmt.Sprintf("web: embedded dashboard: %v", err)) // a build bug, caught by the tests
	}
	return &server{files: files}
})

type server struct {
	files map[string]*file // by URL path
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", ContentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")

	f, ok := s.files[r.URL.Path]
	if !ok {
		http.Error(w, "404 page not found", http.StatusNotFound)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		h.Set("Allow", "GET, HEAD")
		http.Error(w, "405 method not allowed", http.StatusMethodNotAllowed)
		return
	}
	h.Set("Content-Type", f.contentType)
	h.Set("Cache-Control", f.cache)
	h.Set("ETag", f.etag)
	// ServeContent answers If-None-Match with 304, HEAD without a body,
	// and ranges.
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(f.body))
}

// build reads the pages and assets of fsys (rooted at static/) and returns
// every answer by URL path. Each asset is served under its plain name and
// its hashed name; in the pages, every reference to "/assets/NAME" is
// rewritten to the hashed name.
func build(fsys fs.FS) (map[string]*file, error) {
	files := map[string]*file{}
	hashed := map[string]string{} // "/assets/app.js" -> "/assets/app.<hash>.js"
	assets, err := fs.Sub(fsys, "static/assets")
	if err != nil {
		return nil, err
	}
	err = fs.WalkDir(assets, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := fs.ReadFile(assets, name)
		if err != nil {
			return err
		}
		ext := path.Ext(name)
		ctype, ok := contentTypes[ext]
		if !ok {
			return fmt.Errorf("asset %s: no content type for %q", name, ext)
		}
		sum := checksum(body)
		plain := "/assets/" + name
		hashedPath := "/assets/" + strings.TrimSuffix(name, ext) + "." + sum[:12] + ext
		files[plain] = &file{body: body, etag: `"` + sum + `"`, contentType: ctype, cache: cacheRevalidate}
		files[hashedPath] = &file{body: body, etag: `"` + sum + `"`, contentType: ctype, cache: cacheImmutable}
		hashed[plain] = hashedPath
		return nil
	})
	if err != nil {
		return nil, err
	}
	// Longest names first, so that /assets/a.js never rewrites part of
	// /assets/a.js.map.
	plains := make([]string, 0, len(hashed))
	for p := range hashed {
		plains = append(plains, p)
	}
	sort.Slice(plains, func(i, j int) bool { return len(plains[i]) > len(plains[j]) })
	var pairs []string
	for _, p := range plains {
		pairs = append(pairs, `"`+p+`"`, `"`+hashed[p]+`"`)
	}
	rewrite := strings.NewReplacer(pairs...)
	for urlPath, name := range pages {
		body, err := fs.ReadFile(fsys, "static/"+name)
		if err != nil {
			return nil, err
		}
		body = []byte(rewrite.Replace(string(body)))
		files[urlPath] = &file{body: body, etag: `"` + checksum(body) + `"`, contentType: contentTypes[".html"], cache: cacheRevalidate}
	}
	return files, nil
}

// checksum returns the hex SHA-256 of b, cut to 128 bits.
func checksum(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}
