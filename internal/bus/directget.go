package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// errNoDirectRead is why lastMsgsFor could not read with one request: the
// stream does not allow direct gets, the server predates batched ones
// (2.11), or more than its limit of subjects (1,024: an RFQ's messages of
// events) matched. The caller
// reads another way.
var errNoDirectRead = errors.New("no direct read")

// The headers of a NATS status message (nats.go keeps its names private).
const (
	statusHeader      = "Status"
	descriptionHeader = "Description"
)

// directGetRequest is the body of a batched direct get of the last message
// on each subject that matches MultiLastFor (JetStream's multi_last).
type directGetRequest struct {
	MultiLastFor []string `json:"multi_last"`
}

// lastMsgsFor returns the last message stored on each subject of stream
// that matches filter, in stream order, with one batched direct get: the
// server finds them through its per-subject index. It returns none if no
// subject matches, and an error wrapping errNoDirectRead if the server
// would not answer the request (see errNoDirectRead).
//
// It is jetstreamext.GetLastMsgsFor (github.com/synadia-io/orbit.go)
// without that function's synchronous subscription, which allocates a
// 64k-message channel (512 KiB) per call: a watcher opening reads once.
func (b *Bus) lastMsgsFor(ctx context.Context, stream, filter string) ([]*nats.Msg, error) {
	req, err := json.Marshal(directGetRequest{MultiLastFor: []string{filter}})
	if err != nil {
		return nil, fmt.Errorf("direct get %s: %w", filter, err)
	}
	nc := b.js.Conn()
	prefix := b.js.Options().APIPrefix
	if prefix == "" {
		prefix = jetstream.DefaultAPIPrefix
	}
	prefix = strings.TrimSuffix(prefix, ".") + "."

	// The callback runs on the subscription's one goroutine; msgs is read
	// after end delivered its outcome.
	var msgs []*nats.Msg
	end := make(chan error, 1)
	inbox := nc.NewRespInbox()
	sub, err := nc.Subscribe(inbox, func(m *nats.Msg) {
		status := ""
		if len(m.Data) == 0 && m.Header != nil {
			status = m.Header.Get(statusHeader)
		}
		switch status {
		case "":
			msgs = append(msgs, m)
			return
		case "204": // end of batch
			end <- nil
		case "404": // no subject matched
			end <- nil
		default: // 503 no responders, 413 too many subjects, 408/400 an older server
			end <- fmt.Errorf("%w: status %s %s", errNoDirectRead, status, m.Header.Get(descriptionHeader))
		}
	})
	if err != nil {
		return nil, fmt.Errorf("direct get %s: subscribe: %w", filter, err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := nc.PublishRequest(prefix+"DIRECT.GET."+stream, inbox, req); err != nil {
		return nil, fmt.Errorf("direct get %s: %w", filter, err)
	}
	select {
	case err := <-end:
		if err != nil {
			return nil, fmt.Errorf("direct get %s: %w", filter, err)
		}
		return msgs, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("direct get %s: %w", filter, ctx.Err())
	}
}
