package bus

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/wildrydes/rydes"
)

// ProviderAuthenticator checks the NATS credentials of a provider: its user
// is its id, its password the one rydes issued it. *registry.Registry is
// one.
type ProviderAuthenticator interface {
	CheckNATSPassword(ctx context.Context, user, password string) (bool, error)
}

// DefaultInternalUser is EmbeddedConfig.InternalUser's default. It holds a
// '.', which no provider id may, so no provider can be named like it.
const DefaultInternalUser = "rydes.internal"

// authCheckTimeout bounds one check of a provider's credentials.
const authCheckTimeout = 5 * time.Second

// providerInboxPrefix prefixes a provider's id to make its inbox prefix.
const providerInboxPrefix = "_INBOX_"

// ProviderInboxPrefix returns the inbox prefix a provider's connections
// must use (nats.CustomInboxPrefix): the only subjects the provider may
// subscribe to are under it. Every reply nats.go and its jetstream package
// ask for on such a connection (pull requests, PubAcks, acks confirmed
// with DoubleAck, API requests) is under it.
func ProviderInboxPrefix(id string) string { return providerInboxPrefix + id }

// ProviderPermissions returns what provider id may do on the broker:
// exactly what the provider SDK needs, and nothing else.
//
// Publish:
//
//	$JS.API.CONSUMER.MSG.NEXT.RYDES_DISPATCH.provider-<id>  pull from its queue
//	$JS.API.CONSUMER.INFO.RYDES_DISPATCH.provider-<id>      look its queue up
//	$JS.ACK.RYDES_DISPATCH.provider-<id>.>                  ack, nak, term, in progress
//	rydes.answers.<id>                                      its answers
//
// Subscribe:
//
//	_INBOX_<id>.>                                           its own inboxes
//
// Everything else is refused: other providers' queues and answer subjects,
// the dispatch and events subjects, every other JetStream API (streams,
// consumer create and delete, account info) and every other inbox.
//
// NATS permissions do not cover reply subjects: a provider can have the
// server send its responses (a PubAck, its queue's info) to any subject,
// another provider's answer subject or an event subject included, where
// the streams store them. Their bodies are the server's, never a valid
// answer or event; the gatherer refuses them as invalid, and readers of the
// events stream should check an event's Nats-Msg-Id ("event.<rfq>.<seq>").
func ProviderPermissions(id string) *server.Permissions {
	queue := DispatchStream + "." + ProviderQueue(id)
	return &server.Permissions{
		Publish: &server.SubjectPermission{Allow: []string{
			"$JS.API.CONSUMER.MSG.NEXT." + queue,
			"$JS.API.CONSUMER.INFO." + queue,
			"$JS.ACK." + queue + ".>",
			AnswerSubject(id),
		}},
		Subscribe: &server.SubjectPermission{Allow: []string{
			ProviderInboxPrefix(id) + ".>",
		}},
	}
}

// authenticator is the embedded server's client authentication: rydes's
// own connections as the internal user, with every permission; providers
// with their own credentials, with ProviderPermissions; nobody else.
type authenticator struct {
	internalUser     string
	internalPassword string
	providers        ProviderAuthenticator
	timeout          time.Duration
	log              *slog.Logger

	// generation counts, per user, the calls to revoke, so that a check
	// that was in progress when a user's connections were closed does not
	// let a connection in with the credentials just revoked.
	mu         sync.Mutex
	generation map[string]uint64
}

var _ server.Authentication = (*authenticator)(nil)

// newAuthenticator returns the authenticator for cfg, whose Providers is
// set, with the internal credentials filled in.
func newAuthenticator(cfg EmbeddedConfig, log *slog.Logger) (*authenticator, error) {
	a := &authenticator{
		internalUser:     cfg.InternalUser,
		internalPassword: cfg.InternalPassword,
		providers:        cfg.Providers,
		timeout:          authCheckTimeout,
		log:              log,
		generation:       map[string]uint64{},
	}
	if a.internalUser == "" {
		a.internalUser = DefaultInternalUser
	}
	if rydes.ValidateProviderID(a.internalUser) == nil {
		return nil, fmt.Errorf("internal user %q could be a provider's id; use a name with a '.', such as %q", a.internalUser, DefaultInternalUser)
	}
	if a.internalPassword == "" {
		a.internalPassword = rand.Text() + rand.Text()
	}
	return a, nil
}

// Check implements server.Authentication. It runs on the connecting
// client's own goroutine, once per connection.
func (a *authenticator) Check(c server.ClientAuthentication) bool {
	if c.Kind() != server.CLIENT {
		return false
	}
	opts := c.GetOpts()
	if opts == nil || opts.Username == "" {
		a.refused(c, "", "no user given")
		return false
	}
	user := opts.Username
	if user == a.internalUser {
		if subtle.ConstantTimeCompare([]byte(opts.Password), []byte(a.internalPassword)) != 1 {
			a.refused(c, user, "wrong password for the internal user")
			return false
		}
		c.RegisterUser(&server.User{Username: user}) // nil permissions: all
		return true
	}
	if rydes.ValidateProviderID(user) != nil || opts.Password == "" {
		a.refused(c, user, "not a provider's credentials")
		return false
	}

	gen := a.gen(user)
	ctx, cancel := context.WithTimeout(context.Background(), a.timeout)
	defer cancel()
	ok, err := a.providers.CheckNATSPassword(ctx, user, opts.Password)
	if err != nil {
		a.log.Error("nats: checking a provider's credentials failed; refusing the connection", "user", user, "remote", remote(c), "err", err)
		return false
	}
	if !ok {
		a.refused(c, user, "unknown provider or wrong password")
		return false
	}
	if a.gen(user) != gen {
		a.refused(c, user, "the provider's credentials were revoked during the check")
		return false
	}
	c.RegisterUser(&server.User{Username: user, Permissions: ProviderPermissions(user)})
	a.log.Debug("nats: provider connected", "provider", user, "remote", remote(c))
	return true
}

// revoke marks user's credentials as changed: checks in progress fail.
func (a *authenticator) revoke(user string) {
	a.mu.Lock()
	a.generation[user]++
	a.mu.Unlock()
}

func (a *authenticator) gen(user string) uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.generation[user]
}

func (a *authenticator) refused(c server.ClientAuthentication, user, why string) {
	a.log.Info("nats: connection refused", "user", user, "remote", remote(c), "reason", why)
}

func remote(c server.ClientAuthentication) string {
	if addr := c.RemoteAddress(); addr != nil {
		return addr.String()
	}
	return "in-process"
}
