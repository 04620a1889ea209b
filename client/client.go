// Package client is the Go SDK for applications of rydes, over its HTTP API
// (/v1). Customer applications create requests for quotes (RFQs), read them,
// cancel them and watch them until they are complete, expired or cancelled.
// Operators manage providers and dead letters with the admin methods
// (CreateProvider, ListProviders, UpdateProvider, ListDeadLetters, ...), which
// need a Client made WithAPIKey(adminKey). Partners answering over HTTP submit
// quotes and declines with SubmitQuote and SubmitDecline, on a Client made
// WithAPIKey(providerAPIKey).
//
// Methods return what the server answered in its wire form, such as rydes.RFQ or
// rydes.Provider. A response with a status other than 2xx is returned as a
// *Problem, whatever its body held:
//
//	c, err := client.New("http://127.0.0.1:8080")
//	...
//	rfq, err := c.CreateRFQ(ctx, client.CreateRFQRequest{Customer: "alice", From: "Lisbon", To: "Porto"})
//	var p *client.Problem
//	if errors.As(err, &p) && p.Status == http.StatusBadRequest {
//		for _, fe := range p.Errors {
//			fmt.Println(fe.Field, fe.Reason)
//		}
//	}
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/wildrydes/rydes"
)

// Bounds on what the client reads from a response.
const (
	// MaxResponseBytes is the largest successful response body the client
	// reads; a bigger one fails the call.
	MaxResponseBytes = 8 << 20
	// MaxProblemBytes is how much of an error response body the client
	// reads; the rest is ignored.
	MaxProblemBytes = 64 << 10
)

// DefaultTimeout bounds each HTTP exchange of a Client made without
// WithHTTPClient.
const DefaultTimeout = 30 * time.Second

// userAgent is sent with every request.
const userAgent = "rydes-client-go"

// Client talks to one rydes server. It is safe for concurrent use.
type Client struct {
	base   string // scheme://host[/prefix], without a trailing slash
	http   *http.Client
	apiKey string
}

// Option configures a Client made by New.
type Option func(*Client)

// WithHTTPClient makes the Client send its requests with hc instead of an
// http.Client whose Timeout is DefaultTimeout. A nil hc is ignored.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) {
		if hc != nil {
			c.http = hc
		}
	}
}

// WithAPIKey makes the Client authenticate every request with key, sent as
// "Authorization: Bearer <key>". An empty key sends no Authorization header.
//
// Which key depends on the calls: the admin methods (providers and dead
// letters) need rydes's admin key, and the server answers them with a 401
// *Problem without it; SubmitQuote and SubmitDecline need the answering
// provider's API key (rydes.ProviderCredentials.APIKey). Use one Client per
// key.
func WithAPIKey(key string) Option {
	return func(c *Client) { c.apiKey = key }
}

// New returns a Client for the rydes server at baseURL, an http or https URL
// such as "http://127.0.0.1:8080" or "https://example.com/rydes" (the /v1
// paths are appended to it).
func New(baseURL string, opts ...Option) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("rydes client: invalid base URL %q: %w", baseURL, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("rydes client: invalid base URL %q: the scheme must be http or https", baseURL)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("rydes client: invalid base URL %q: no host", baseURL)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("rydes client: invalid base URL %q: it may not hold user info, a query or a fragment", baseURL)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	c := &Client{
		base: u.String(),
		http: &http.Client{Timeout: DefaultTimeout},
	}
	for _, opt := range opts {
		opt(c)
	}
	return c, nil
}

// CreateRFQRequest is the body of POST /v1/rfqs: the ride a customer asks
// quotes for. Customer, From and To are required; the zero value of any
// other field leaves it out, and the server applies its default.
type CreateRFQRequest struct {
	Customer   string            `json:"customer"`
	From       string            `json:"from"`
	To         string            `json:"to"`
	Passengers int               `json:"passengers,omitzero"`
	PickupAt   time.Time         `json:"pickup_at,omitzero"` // zero: as soon as possible
	Attributes map[string]string `json:"attributes,omitempty"`
	// Timeout is how long providers have to answer; 0 asks for the server's
	// default. On the wire it is a Go duration string such as "45s".
	Timeout time.Duration `json:"-"`
}

// createRFQRequestJSON is CreateRFQRequest without its methods, so that they
// can encode the other fields the standard way.
type createRFQRequestJSON CreateRFQRequest

// MarshalJSON encodes the request as the API expects it, with Timeout as a
// duration string ("45s").
func (r CreateRFQRequest) MarshalJSON() ([]byte, error) {
	w := struct {
		createRFQRequestJSON
		Timeout string `json:"timeout,omitempty"`
	}{createRFQRequestJSON: createRFQRequestJSON(r)}
	if r.Timeout != 0 {
		w.Timeout = r.Timeout.String()
	}
	return json.Marshal(w)
}

// UnmarshalJSON decodes what MarshalJSON encodes, for servers and test
// doubles.
func (r *CreateRFQRequest) UnmarshalJSON(data []byte) error {
	var w struct {
		*createRFQRequestJSON
		Timeout string `json:"timeout"`
	}
	w.createRFQRequestJSON = (*createRFQRequestJSON)(r)
	if err := json.Unmarshal(data, &w); err != nil {
		return err
	}
	r.Timeout = 0
	if w.Timeout != "" {
		d, err := time.ParseDuration(w.Timeout)
		if err != nil {
			return fmt.Errorf("timeout: %q is not a duration such as \"45s\"", w.Timeout)
		}
		r.Timeout = d
	}
	return nil
}

// CreateRFQ asks the server to send req to every matching provider and
// returns the new RFQ, open, with its roster and deadline.
func (c *Client) CreateRFQ(ctx context.Context, req CreateRFQRequest) (rydes.RFQ, error) {
	var rfq rydes.RFQ
	err := c.do(ctx, http.MethodPost, "/v1/rfqs", req, &rfq)
	return rfq, err
}

// GetRFQ returns the RFQ with the given id as it is now.
func (c *Client) GetRFQ(ctx context.Context, id string) (rydes.RFQ, error) {
	var rfq rydes.RFQ
	path, err := rfqPath(id)
	if err != nil {
		return rfq, err
	}
	err = c.do(ctx, http.MethodGet, path, nil, &rfq)
	return rfq, err
}

// CancelRFQ cancels the open RFQ with the given id and returns it,
// cancelled: the providers that had not answered are withdrawn. Cancelling an RFQ that is already complete, expired or cancelled fails
// with a *Problem of status 409.
func (c *Client) CancelRFQ(ctx context.Context, id string) (rydes.RFQ, error) {
	var rfq rydes.RFQ
	path, err := rfqPath(id)
	if err != nil {
		return rfq, err
	}
	err = c.do(ctx, http.MethodDelete, path, nil, &rfq)
	return rfq, err
}

// rfqPath returns the path of the RFQ with the given id, refusing ids that
// are not RFQ ids before they reach a URL.
func rfqPath(id string) (string, error) {
	if err := rydes.ValidateID(id); err != nil {
		if len(id) > 64 {
			id = id[:64] + "…"
		}
		return "", fmt.Errorf("rydes client: invalid RFQ id %q: must be a UUID such as 8b095f9e-cffc-4790-91a6-28353fa30e42", id)
	}
	return "/v1/rfqs/" + url.PathEscape(id), nil
}

// do sends one request with in (if not nil) as its JSON body and decodes a
// 2xx response's JSON body into out; with a nil out, the body of a 2xx
// response (204 No Content, say) is ignored. Other responses become a
// *Problem.
func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("rydes client: encode %s %s: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return fmt.Errorf("rydes client: %s %s: %w", method, path, err)
	}
	req.Header.Set("Accept", "application/json, application/problem+json")
	req.Header.Set("User-Agent", userAgent)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.apiKey != "" {
		req.Header.Set("Authorization", "Bearer "+c.apiKey)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("rydes client: %w", err)
	}
	defer func() {
		// Drain a little so that the connection can be reused, then close.
		_, _ = io.CopyN(io.Discard, resp.Body, 4<<10)
		_ = resp.Body.Close()
	}()

	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		b, err := io.ReadAll(io.LimitReader(resp.Body, MaxProblemBytes))
		return problemOf(resp, b, err)
	}
	if out == nil {
		return nil
	}

	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBytes+1))
	if err != nil {
		return fmt.Errorf("rydes client: %s %s: read response: %w", method, path, err)
	}
	if len(b) > MaxResponseBytes {
		return fmt.Errorf("rydes client: %s %s: response body exceeds %d bytes", method, path, MaxResponseBytes)
	}
	if err := json.Unmarshal(b, out); err != nil {
		ct := resp.Header.Get("Content-Type")
		if mt, _, _ := mime.ParseMediaType(ct); mt != "application/json" {
			return fmt.Errorf("rydes client: %s %s: %d response is %q, not JSON: %s",
				method, path, resp.StatusCode, ct, snippet(b))
		}
		return fmt.Errorf("rydes client: %s %s: decode response: %w", method, path, err)
	}
	return nil
}
