package web

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/require"
)

// get serves one request through Handler and returns the answer and body.
func get(t *testing.T, method, target string, header http.Header) (*http.Response, string) {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	for k, v := range header {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	Handler().ServeHTTP(rec, req)
	resp := rec.Result()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(body)
}

// requireSecurityHeaders checks the headers every answer carries.
func requireSecurityHeaders(t *testing.T, resp *http.Response) {
	t.Helper()
	require.Equal(t, ContentSecurityPolicy, resp.Header.Get("Content-Security-Policy"))
	require.Equal(t, "nosniff", resp.Header.Get("X-Content-Type-Options"))
	require.Equal(t, "no-referrer", resp.Header.Get("Referrer-Policy"))
	require.Equal(t, "DENY", resp.Header.Get("X-Frame-Options"))
}

var assetRef = regexp.MustCompile(`(?:src|href)="(/assets/[^"]+)"`)

// assetRefs returns the asset paths a page names.
func assetRefs(t *testing.T, page string) []string {
	t.Helper()
	_, body := get(t, http.MethodGet, page, nil)
	var refs []string
	for _, m := range assetRef.FindAllStringSubmatch(body, -1) {
		refs = append(refs, m[1])
	}
	require.NotEmpty(t, refs, "%s names its assets", page)
	return refs
}

func TestPages(t *testing.T) {
	for _, page := range []string{"/", "/providers"} {
		t.Run(page, func(t *testing.T) {
			resp, body := get(t, http.MethodGet, page, nil)
			require.Equal(t, http.StatusOK, resp.StatusCode)
			require.Equal(t, "text/html; charset=utf-8", resp.Header.Get("Content-Type"))
			require.Equal(t, "no-cache", resp.Header.Get("Cache-Control"))
			require.Regexp(t, `^"[0-9a-f]{32}"$`, resp.Header.Get("ETag"))
			requireSecurityHeaders(t, resp)
			require.True(t, strings.HasPrefix(body, "<!doctype html>"))
			require.Contains(t, body, `<main id="main"`, "a main landmark")
			require.Contains(t, body, `<nav aria-label="Main">`)
		})
	}
	_, index := get(t, http.MethodGet, "/", nil)
	for _, want := range []string{`<label for="from">`, `<label for="to">`, `<label for="passengers">`, `<label for="customer">`,
		`value="web"`, `aria-live="polite"`, `id="cancel"`} {
		require.Contains(t, index, want)
	}
	_, providers := get(t, http.MethodGet, "/providers", nil)
	require.Contains(t, providers, `<label for="admin-key">`)
	require.Contains(t, providers, `id="refresh"`)
}

func TestAssetsAreHashedImmutableAndTyped(t *testing.T) {
	wantType := map[string]string{
		".css": "text/css; charset=utf-8",
		".js":  "text/javascript; charset=utf-8",
		".svg": "image/svg+xml",
	}
	seen := map[string]bool{}
	for _, page := range []string{"/", "/providers"} {
		for _, ref := range assetRefs(t, page) {
			if seen[ref] {
				continue
			}
			seen[ref] = true
			require.Regexp(t, `^/assets/[a-z]+\.[0-9a-f]{12}\.(css|js|svg)$`, ref, "named by content hash")
			resp, body := get(t, http.MethodGet, ref, nil)
			require.Equal(t, http.StatusOK, resp.StatusCode, ref)
			ext := ref[strings.LastIndex(ref, "."):]
			require.Equal(t, wantType[ext], resp.Header.Get("Content-Type"), ref)
			require.Equal(t, "public, max-age=31536000, immutable", resp.Header.Get("Cache-Control"), ref)
			requireSecurityHeaders(t, resp)
			require.NotEmpty(t, body)
			etag := resp.Header.Get("ETag")
			require.Contains(t, etag, ref[strings.LastIndex(ref[:len(ref)-len(ext)], ".")+1:len(ref)-len(ext)], "the name's hash is the ETag's prefix")

			// The plain name serves the same bytes, to be revalidated.
			plain := regexp.MustCompile(`\.[0-9a-f]{12}\.`).ReplaceAllString(ref, ".")
			presp, pbody := get(t, http.MethodGet, plain, nil)
			require.Equal(t, http.StatusOK, presp.StatusCode, plain)
			require.Equal(t, body, pbody)
			require.Equal(t, etag, presp.Header.Get("ETag"))
			require.Equal(t, "no-cache", presp.Header.Get("Cache-Control"))
			require.Equal(t, wantType[ext], presp.Header.Get("Content-Type"))
		}
	}
	require.Len(t, seen, 5, "favicon, stylesheet and three scripts: %v", seen)
}

func TestETagRevalidation(t *testing.T) {
	for _, target := range []string{"/", "/providers", "/assets/app.css", assetRefs(t, "/")[1]} {
		resp, body := get(t, http.MethodGet, target, nil)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		etag := resp.Header.Get("ETag")

		resp, nbody := get(t, http.MethodGet, target, http.Header{"If-None-Match": {etag}})
		require.Equal(t, http.StatusNotModified, resp.StatusCode, target)
		require.Empty(t, nbody)
		require.Equal(t, etag, resp.Header.Get("ETag"))
		requireSecurityHeaders(t, resp)

		resp, obody := get(t, http.MethodGet, target, http.Header{"If-None-Match": {`"stale"`}})
		require.Equal(t, http.StatusOK, resp.StatusCode, target)
		require.Equal(t, body, obody)
	}
}

func TestHead(t *testing.T) {
	resp, body := get(t, http.MethodHead, "/", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Empty(t, body)
	require.Equal(t, "text/html; charset=utf-8", resp.Header.Get("Content-Type"))
	require.NotEmpty(t, resp.Header.Get("ETag"))
}

func TestNotFound(t *testing.T) {
	for _, target := range []string{
		"/assets/nope.js", "/assets/", "/assets", "/assets/app.000000000000.js", "/assets/../index.html",
		"/index.html", "/providers/", "/nope", "/static/index.html",
	} {
		resp, _ := get(t, http.MethodGet, target, nil)
		require.Equal(t, http.StatusNotFound, resp.StatusCode, target)
		requireSecurityHeaders(t, resp)
	}
}

func TestMethodNotAllowed(t *testing.T) {
	for _, method := range []string{http.MethodPost, http.MethodPut, http.MethodDelete} {
		resp, _ := get(t, method, "/", nil)
		require.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode, method)
		require.Equal(t, "GET, HEAD", resp.Header.Get("Allow"))
	}
}

// TestStrictCSPHolds checks that the pages need nothing the policy forbids:
// no inline script or style, no style attributes, nothing from elsewhere.
func TestStrictCSPHolds(t *testing.T) {
	require.NotContains(t, ContentSecurityPolicy, "unsafe")
	require.Contains(t, ContentSecurityPolicy, "default-src 'none'")
	entries, err := static.ReadDir("static")
	require.NoError(t, err)
	names := []string{}
	for _, e := range entries {
		if !e.IsDir() {
			names = append(names, "static/"+e.Name())
		}
	}
	assets, err := static.ReadDir("static/assets")
	require.NoError(t, err)
	for _, e := range assets {
		names = append(names, "static/assets/"+e.Name())
	}
	inlineScript := regexp.MustCompile(`<script(?:\s[^>]*)?>\s*[^<\s]`)
	for _, name := range names {
		b, err := static.ReadFile(name)
		require.NoError(t, err)
		s := string(b)
		require.Falsef(t, regexp.MustCompile(`https?://`).MatchString(strings.ReplaceAll(s, "http://www.w3.org/2000/svg", "")),
			"%s names another origin", name)
		if strings.HasSuffix(name, ".html") {
			require.NotRegexp(t, inlineScript, s, "%s: inline script", name)
			require.NotContains(t, s, "<style", "%s: inline style", name)
			require.NotRegexp(t, `\sstyle=`, s, "%s: style attribute", name)
			require.NotRegexp(t, `\son[a-z]+=`, s, "%s: inline event handler", name)
		}
		if strings.HasSuffix(name, ".js") {
			for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"} {
				require.Falsef(t, strings.Contains(s, bad), "%s uses %s: build DOM from text, run no strings", name, bad)
			}
		}
	}
}

func TestBuildRewritesAssetReferences(t *testing.T) {
	fsys := fstest.MapFS{
		"static/index.html":          {Data: []byte(`<script src="/assets/a.js"></script><link href="/assets/a.js.css">`)},
		"static/providers.html":      {Data: []byte(`<p>"/assets/a.js" stays quoted</p>`)},
		"static/assets/a.js":         {Data: []byte(`1`)},
		"static/assets/a.js.css":     {Data: []byte(`p{}`)},
		"static/assets/sub/b.svg":    {Data: []byte(`<svg/>`)},
		"static/assets/sub/.keep.js": {Data: []byte(``)},
	}
	files, err := build(fsys)
	require.NoError(t, err)
	sum := checksum([]byte(`1`))[:12]
	cssSum := checksum([]byte(`p{}`))[:12]
	require.Equal(t, `<script src="/assets/a.`+sum+`.js"></script><link href="/assets/a.js.`+cssSum+`.css">`, string(files["/"].body))
	require.Contains(t, files, "/assets/sub/b."+checksum([]byte(`<svg/>`))[:12]+".svg")
	require.Equal(t, "text/javascript; charset=utf-8", files["/assets/a."+sum+".js"].contentType)

	_, err = build(fstest.MapFS{
		"static/index.html":     {Data: []byte(``)},
		"static/providers.html": {Data: []byte(``)},
		"static/assets/x.exe":   {Data: []byte(`MZ`)},
	})
	require.ErrorContains(t, err, "no content type")
}
