package provider

import (
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/wildrydes/rydes"
)

// inboxPrefix prefixes a provider's id to make its inbox prefix; rydes's
// broker lets a provider subscribe only under InboxPrefix(id).
const inboxPrefix = "_INBOX_"

// Reconnection defaults of Connect.
const (
	// DefaultReconnectWait is how long Connect's connection waits between
	// two attempts to reconnect to the same server.
	DefaultReconnectWait = time.Second
	// defaultReconnectJitter is added at random to DefaultReconnectWait.
	defaultReconnectJitter = 500 * time.Millisecond
)

// InboxPrefix returns the inbox prefix a connection of provider id must
// use: rydes's broker lets a provider subscribe to its own inboxes only,
// the subjects under "_INBOX_<id>.". Connect sets it; with a NATS client of
// your own, set it yourself (nats.CustomInboxPrefix in Go).
func InboxPrefix(id string) string { return inboxPrefix + id }

// Connect connects to rydes's NATS at url (one URL, or several separated
// by commas) as provider id, with the NATS password rydes issued it. The
// connection uses the provider's inbox prefix, names itself
// "rydes-provider-<id>", and reconnects forever, DefaultReconnectWait
// apart, so that Run carries on across a restart of the broker. opts are
// applied after these, so they can override them, e.g. to add
// nats.DisconnectErrHandler or TLS. Close the connection when done.
//
// After rydes rotates the provider's credentials or removes it, the broker
// closes the provider's connections and refuses the old password: reconnect
// with the new one.
func Connect(url, id, password string, opts ...nats.Option) (*nats.Conn, error) {
	if err := rydes.ValidateProviderID(id); err != nil {
		return nil, fmt.Errorf("connect provider %q: %w", id, err)
	}
	if password == "" {
		return nil, fmt.Errorf("connect provider %s: a NATS password is required", id)
	}
	all := append([]nats.Option{
		nats.UserInfo(id, password),
		nats.CustomInboxPrefix(InboxPrefix(id)),
		nats.Name("rydes-provider-" + id),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(DefaultReconnectWait),
		nats.ReconnectJitter(defaultReconnectJitter, defaultReconnectJitter),
	}, opts...)
	nc, err := nats.Connect(url, all...)
	if err != nil {
		if errors.Is(err, nats.ErrAuthorization) {
			return nil, fmt.Errorf("connect provider %s to %s: the broker refused the credentials (unknown provider, wrong or rotated password): %w", id, url, err)
		}
		return nil, fmt.Errorf("connect provider %s to %s: %w", id, url, err)
	}
	return nc, nil
}
