// Package crashtest kills a real rydes process, over and over, while
// requests come in, and checks that nothing accepted is lost or doubled
// (issue 5, item 1).
//
// The test builds the rydes binary once, runs `rydes serve --demo` as a
// child process on a data dir kept across restarts, and stops it at random
// moments (seeded, logged) with SIGKILL or SIGTERM. At the end it checks,
// over HTTP, in the SQLite file and on the broker's streams:
//
//  1. every request that got 201 exists and is complete or expired;
//  2. the roster holds one entry per asked provider, none pending once the
//     request is final, and the quotes shown are at most the asked;
//  3. each request's events are numbered 1..n without gap or repeat, with
//     exactly one final event, last, matching the stored status;
//  4. every provider's queue drains: no request waits unanswered or
//     unacknowledged (a provider acknowledges a request only once rydes
//     replied that its answer is staged).
//
// Flags: -crash.kills N (default 20), -crash.long (at least 200 kills),
// -crash.seed S (0: from the clock).
package crashtest

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	_ "modernc.org/sqlite"

	"github.com/wildrydes/rydes"
	"github.com/wildrydes/rydes/internal/bus"
	"github.com/wildrydes/rydes/internal/rydestest"
)

var (
	flagKills = flag.Int("crash.kills", 20, "number of SIGKILLs in TestKill")
	flagLong  = flag.Bool("crash.long", false, "long run: at least 200 SIGKILLs and 20 SIGTERMs")
	flagSeed  = flag.Int64("crash.seed", 0, "seed of the fault schedule (0: from the clock)")
)

const (
	simProviders = 5
	rfqTimeout   = 3 * time.Second
	// ackWaitBound bounds waiting for the answers stream to drain: an answer
	// pulled by a killed process is redelivered after the consumer's ack wait
	// (bus.DefaultAckWait, 30s), so the bound is above that.
	ackWaitBound = bus.DefaultAckWait + 30*time.Second
	// finalBound bounds waiting for every accepted request to be final:
	// its deadline, then at most twice the ack wait (the expiry grace).
	finalBound = rfqTimeout + 2*bus.DefaultAckWait + 30*time.Second
	// loadWorkers POST concurrently; each pauses loadPace between requests
	// (pacing the load, not synchronising anything) and stops after
	// loadMaxPerWorker requests.
	loadWorkers      = 3
	loadPace         = 20 * time.Millisecond
	loadMaxPerWorker = 3000
)

var (
	binOnce sync.Once
	binDir  string
	binPath string
	binErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// binary builds rydes (without -race, to keep it fast) once per test run.
func binary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		root, err := repoRoot()
		if err != nil {
			binErr = err
			return
		}
		binDir, err = os.MkdirTemp("", "rydes-crashtest-bin-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(binDir, "rydes")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/rydes")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build ./cmd/rydes: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// server is the rydes child process, restarted on the same data dir.
type server struct {
	t       *testing.T
	bin     string
	dir     string // kept across restarts: data, logs
	dataDir string
	addr    string
	url     atomic.Pointer[string]
	runs    int

	cmd  *exec.Cmd
	done chan struct{} // closed when cmd exited
	werr error         // cmd.Wait's error, set before done is closed
	logs []string      // log files of every run, in order
}

func newServer(t *testing.T) *server {
	t.Helper()
	dir := t.TempDir()
	s := &server{t: t, bin: binary(t), dir: dir, dataDir: filepath.Join(dir, "data"), addr: rydestest.FreeAddr(t)}
	t.Cleanup(func() {
		if s.running() {
			_ = s.cmd.Process.Kill()
			<-s.done
		}
		if t.Failed() {
			s.dumpLogs()
		}
	})
	return s
}

func (s *server) running() bool {
	if s.cmd == nil {
		return false
	}
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

// start runs rydes and waits until /healthz answers 200. If the process
// exits before that (its port was taken meanwhile), it tries again on a new
// port.
func (s *server) start(extra ...string) {
	s.t.Helper()
	for attempt := 0; ; attempt++ {
		if attempt > 0 || !portFree(s.addr) {
			s.addr = rydestest.FreeAddr(s.t)
		}
		if s.tryStart(extra) {
			return
		}
		if attempt == 2 {
			s.t.Fatalf("rydes run %d exited before it was healthy: %v", s.runs, s.werr)
		}
		s.t.Logf("rydes run %d exited before it was healthy (%v); trying a new port", s.runs, s.werr)
	}
}

func portFree(addr string) bool {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	l.Close()
	return true
}

func (s *server) tryStart(extra []string) bool {
	s.t.Helper()
	s.runs++
	args := []string{"serve", "--demo",
		"--http", s.addr,
		"--data", s.dataDir,
		"--allow-tmpfs",
		"--log-level", "debug",
		"--sim-providers", fmt.Sprint(simProviders),
		"--sim-min-delay", "0s",
		"--sim-max-delay", "300ms",
		"--sim-quote-rate", "0.6",
		"--rfq-timeout", rfqTimeout.String(),
	}
	args = append(args, extra...)
	cmd := exec.Command(s.bin, args...)
	cmd.Env = env()
	out := s.openLog(fmt.Sprintf("run%03d.stdout", s.runs))
	errf := s.openLog(fmt.Sprintf("run%03d.stderr", s.runs))
	cmd.Stdout, cmd.Stderr = out, errf
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("start rydes: %v", err)
	}
	s.cmd, s.done = cmd, make(chan struct{})
	done := s.done
	go func() {
		err := cmd.Wait()
		out.Close()
		errf.Close()
		s.werr = err
		close(done)
	}()
	url := "http://" + s.addr
	healthy := false
	rydestest.WaitFor(s.t, "rydes run "+fmt.Sprint(s.runs)+" to be healthy at "+url, func() bool {
		if !s.running() {
			return true
		}
		healthy = get(url+"/healthz") == http.StatusOK
		return healthy
	})
	if !healthy {
		return false
	}
	s.url.Store(&url)
	return true
}

// env is this process's environment without RYDES_* variables, which would
// set serve flags.
func env() []string {
	var e []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "RYDES_") {
			e = append(e, kv)
		}
	}
	return e
}

func (s *server) openLog(name string) *os.File {
	s.t.Helper()
	p := filepath.Join(s.dir, name)
	f, err := os.Create(p)
	if err != nil {
		s.t.Fatalf("create log: %v", err)
	}
	s.logs = append(s.logs, p)
	return f
}

func (s *server) dumpLogs() {
	from := max(len(s.logs)-4, 0) // the last two runs' stdout and stderr
	for _, p := range s.logs[from:] {
		b, _ := os.ReadFile(p)
		if len(b) > 6000 {
			b = append([]byte("…"), b[len(b)-6000:]...)
		}
		s.t.Logf("---- tail of %s ----\n%s", filepath.Base(p), b)
	}
}

// stop sends sig and waits for the process to exit; it returns Wait's error.
func (s *server) stop(sig syscall.Signal) error {
	s.t.Helper()
	if err := s.cmd.Process.Signal(sig); err != nil {
		s.t.Fatalf("signal %v: %v", sig, err)
	}
	select {
	case <-s.done:
	case <-time.After(rydestest.WaitTimeout + 30*time.Second): // bound against hangs (shutdown waits up to 30s)
		s.t.Fatalf("rydes did not exit after %v", sig)
	}
	return s.werr
}

func get(url string) int {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// load POSTs requests until stopped and records what came back.
type load struct {
	s      *server
	stop   chan struct{}
	wg     sync.WaitGroup
	client *http.Client

	mu         sync.Mutex
	accepted   []string
	connErrs   int
	unavail    int // 503
	unexpected []string
}

func startLoad(s *server) *load {
	l := &load{s: s, stop: make(chan struct{}), client: &http.Client{Timeout: 20 * time.Second}}
	for w := range loadWorkers {
		l.wg.Add(1)
		go l.worker(w)
	}
	return l
}

func (l *load) worker(w int) {
	defer l.wg.Done()
	for i := range loadMaxPerWorker {
		select {
		case <-l.stop:
			return
		default:
		}
		l.post(fmt.Sprintf(`{"customer":"crash","from":"w%d","to":"r%d"}`, w, i))
		select {
		case <-l.stop:
			return
		case <-time.After(loadPace):
		}
	}
}

func (l *load) post(body string) {
	url := *l.s.url.Load()
	resp, err := l.client.Post(url+"/v1/rfqs", "application/json", strings.NewReader(body))
	if err != nil {
		l.mu.Lock()
		l.connErrs++
		l.mu.Unlock()
		return
	}
	b, rerr := io.ReadAll(resp.Body)
	resp.Body.Close()
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case resp.StatusCode == http.StatusCreated:
		var rfq rydes.RFQ
		if err := json.Unmarshal(b, &rfq); err != nil || rfq.ID == "" {
			if rerr != nil {
				// The body was cut by the crash: 201 was sent, but we
				// cannot tell which request; it is checked like any other
				// stored one.
				l.connErrs++
				return
			}
			l.unexpected = append(l.unexpected, fmt.Sprintf("201 with unreadable body %q", b))
			return
		}
		l.accepted = append(l.accepted, rfq.ID)
	case resp.StatusCode == http.StatusServiceUnavailable:
		l.unavail++
	case rerr != nil:
		l.connErrs++
	default:
		l.unexpected = append(l.unexpected, fmt.Sprintf("%d %s", resp.StatusCode, bytes.TrimSpace(b)))
	}
}

func (l *load) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.accepted)
}

func (l *load) end() {
	close(l.stop)
	l.wg.Wait()
}

func seed(t *testing.T) uint64 {
	s := uint64(*flagSeed)
	if s == 0 {
		s = uint64(time.Now().UnixNano())
	}
	t.Logf("fault schedule seed %d (rerun with -crash.seed %d)", s, s)
	return s
}

// TestKill SIGKILLs rydes at random moments under load.
func TestKill(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test: skipped with -short")
	}
	kills := *flagKills
	if *flagLong {
		kills = max(kills, 200)
	}
	runCrash(t, syscall.SIGKILL, kills)
}

// TestTerm SIGTERMs rydes at random moments under load: besides the
// invariants, no request in flight may be dropped.
func TestTerm(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test: skipped with -short")
	}
	rounds := 5
	if *flagLong {
		rounds = 20
	}
	runCrash(t, syscall.SIGTERM, rounds)
}

func runCrash(t *testing.T, sig syscall.Signal, rounds int) {
	rng := rand.New(rand.NewPCG(seed(t), 0x5eed))
	began := time.Now()
	phase := func(what string) { t.Logf("%s at %v", what, time.Since(began).Round(time.Millisecond)) }
	s := newServer(t)
	s.start()
	l := startLoad(s)
	loadStopped := false
	defer func() {
		if !loadStopped {
			l.end()
		}
	}()

	for i := range rounds {
		// The fault schedule: a random moment 100–700 ms after healthy.
		after := time.Duration(100+rng.IntN(601)) * time.Millisecond
		<-time.After(after)
		stopStart := time.Now()
		err := s.stop(sig)
		stopTook := time.Since(stopStart)
		if sig == syscall.SIGTERM && err != nil {
			t.Errorf("round %d: rydes exited with %v after SIGTERM, want a clean exit", i+1, err)
		}
		s.start()
		if (i+1)%5 == 0 || i+1 == rounds {
			t.Logf("%s %d/%d done (after %v, exit took %v); %d accepted so far", sigName(sig), i+1, rounds, after, stopTook.Round(time.Millisecond), l.count())
		}
	}
	l.end()
	loadStopped = true
	phase("load stopped")

	l.mu.Lock()
	accepted := append([]string(nil), l.accepted...)
	connErrs, unavail, unexpected := l.connErrs, l.unavail, l.unexpected
	l.mu.Unlock()
	if len(accepted) == 0 {
		t.Fatal("no request was accepted")
	}
	for _, u := range unexpected {
		t.Errorf("a POST /v1/rfqs answered neither 201, 503 nor a connection error: %s", u)
	}

	// Invariant 1 (over HTTP): every accepted request exists and becomes
	// final. Deadlines are rfq-timeout after creation, so this is bounded.
	byID := map[string]rydes.RFQ{}
	url := *s.url.Load()
	lost := 0
	// An RFQ stays open past its deadline while answers received before
	// it wait on the answers stream; a killed gatherer's come back after
	// the ack wait, and the hold is bounded by twice that.
	rydestest.WaitForWithin(t, finalBound, "every accepted request to be complete or expired", func() bool {
		for _, id := range accepted {
			if r, ok := byID[id]; ok && r.Status.Final() {
				continue
			}
			r, status := getRFQ(t, url, id)
			if status == http.StatusNotFound {
				if _, seen := byID[id]; !seen {
					lost++
					byID[id] = rydes.RFQ{ID: id, Status: "lost"}
				}
				continue
			}
			if status != http.StatusOK {
				return false
			}
			byID[id] = r
			if !r.Status.Final() {
				return false
			}
		}
		return true
	})
	completed, expired := 0, 0
	for _, id := range accepted {
		r := byID[id]
		switch r.Status {
		case rydes.StatusComplete:
			completed++
		case rydes.StatusExpired:
			expired++
		case "lost":
			t.Errorf("LOST: request %s got 201 but GET /v1/rfqs/%s answers 404", id, id)
		default:
			t.Errorf("request %s is %s, want complete or expired", id, r.Status)
		}
		if r.Status.Final() {
			if len(r.Providers) != simProviders {
				t.Errorf("request %s asked %d providers, want %d", id, len(r.Providers), simProviders)
			}
			if len(r.Quotes) > len(r.Providers) {
				t.Errorf("request %s shows %d quotes for %d asked providers", id, len(r.Quotes), len(r.Providers))
			}
			for _, p := range r.Providers {
				if p.State == rydes.ProviderPending {
					t.Errorf("request %s is %s with provider %s still pending", id, r.Status, p.Provider)
				}
			}
		}
	}

	phase("every accepted request final")
	// A clean stop, then the database, read directly.
	if err := s.stop(syscall.SIGTERM); err != nil {
		t.Errorf("final SIGTERM: rydes exited with %v, want a clean exit", err)
	}
	rows := checkDB(t, s.dataDir, accepted)
	phase("database checked")

	// Invariants 3 and 4 need the broker: start once more with a client
	// port and connect as rydes's internal user.
	password := fmt.Sprintf("crash-%d", rng.Uint64())
	s.start("--nats-listen", "127.0.0.1:0", "--nats-password", password)
	natsURL := natsURLOf(t, s)
	nc, err := nats.Connect(natsURL, nats.UserInfo(bus.DefaultInternalUser, password), nats.Name("crashtest"))
	if err != nil {
		t.Fatalf("connect to the broker at %s: %v", natsURL, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	events := checkEvents(t, js, rows)
	phase("events checked")
	checkQueuesDrained(t, js)
	phase("answers checked")

	t.Logf("figures (%s): %d rounds; requests accepted %d, completed %d, expired %d, lost %d; "+
		"POSTs failed by connection %d, 503 %d, unexpected %d; stored requests %d; events read %d",
		sigName(sig), rounds, len(accepted), completed, expired, lost, connErrs, unavail, len(unexpected), len(rows), events)
	if lost != 0 {
		t.Errorf("%d accepted requests lost", lost)
	}
}

func sigName(sig syscall.Signal) string {
	if sig == syscall.SIGKILL {
		return "SIGKILL"
	}
	return "SIGTERM"
}

func getRFQ(t *testing.T, url, id string) (rydes.RFQ, int) {
	t.Helper()
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url + "/v1/rfqs/" + id)
	if err != nil {
		return rydes.RFQ{}, 0
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return rydes.RFQ{}, resp.StatusCode
	}
	var r rydes.RFQ
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("GET /v1/rfqs/%s: %v: %s", id, err, b)
	}
	return r, resp.StatusCode
}

// storedRFQ is one row of rfqs as the database holds it.
type storedRFQ struct {
	status   rydes.Status
	eventSeq int64
}

// checkDB reads the database after rydes exited: every accepted request is
// there and final, each roster has one entry per asked provider, none
// pending once final, and the pending counter agrees with the roster.
func checkDB(t *testing.T, dataDir string, accepted []string) map[string]storedRFQ {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dataDir, "rydes.db")+"?mode=ro&_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows := map[string]storedRFQ{}
	q, err := db.Query(`SELECT id, status, event_seq, pending, deadline FROM rfqs`)
	if err != nil {
		t.Fatalf("read rfqs: %v", err)
	}
	pendingCol := map[string]int{}
	snapshot := time.Now()
	for q.Next() {
		var id, status string
		var seq, deadline int64
		var pending int
		if err := q.Scan(&id, &status, &seq, &pending, &deadline); err != nil {
			t.Fatal(err)
		}
		rows[id] = storedRFQ{status: rydes.Status(status), eventSeq: seq}
		pendingCol[id] = pending
		if !rydes.Status(status).Final() && time.UnixMicro(deadline).Before(snapshot.Add(-2*time.Second)) {
			t.Errorf("request %s is still %s well past its deadline", id, status)
		}
	}
	if err := q.Err(); err != nil {
		t.Fatal(err)
	}
	q.Close()

	// Every answer acknowledged to its provider before the deadline was
	// staged: none was refused as late, however long a crash held it up.
	var lateButInTime int
	if err := db.QueryRow(`
		SELECT count(*) FROM rejections j JOIN rfqs r ON r.id = j.rfq_id
		WHERE j.reason = 'late' AND j.received_at < r.deadline`).Scan(&lateButInTime); err != nil {
		t.Fatalf("read rejections: %v", err)
	}
	if lateButInTime > 0 {
		t.Errorf("%d answers received before their request's deadline were refused as late", lateButInTime)
	}

	type roster struct{ n, pending, timedOut int }
	ros := map[string]*roster{}
	q, err = db.Query(`SELECT rfq_id, state FROM roster`)
	if err != nil {
		t.Fatalf("read roster: %v", err)
	}
	for q.Next() {
		var id, state string
		if err := q.Scan(&id, &state); err != nil {
			t.Fatal(err)
		}
		r := ros[id]
		if r == nil {
			r = &roster{}
			ros[id] = r
		}
		r.n++
		switch rydes.ProviderState(state) {
		case rydes.ProviderPending:
			r.pending++
		case rydes.ProviderTimedOut:
			r.timedOut++
		}
	}
	if err := q.Err(); err != nil {
		t.Fatal(err)
	}
	q.Close()

	for id, row := range rows {
		r := ros[id]
		if r == nil {
			r = &roster{}
		}
		if r.n != simProviders {
			t.Errorf("request %s has %d roster entries, want %d (one per asked provider)", id, r.n, simProviders)
		}
		if pendingCol[id] != r.pending {
			t.Errorf("request %s: pending column %d, roster has %d pending", id, pendingCol[id], r.pending)
		}
		switch row.status {
		case rydes.StatusComplete:
			if r.pending != 0 || r.timedOut != 0 {
				t.Errorf("request %s is complete with %d pending and %d timed out providers", id, r.pending, r.timedOut)
			}
		case rydes.StatusExpired:
			if r.pending != 0 {
				t.Errorf("request %s is expired with %d pending providers", id, r.pending)
			}
		}
	}
	for _, id := range accepted {
		row, ok := rows[id]
		if !ok {
			t.Errorf("LOST: request %s got 201 but is not in the database", id)
			continue
		}
		if row.status != rydes.StatusComplete && row.status != rydes.StatusExpired {
			t.Errorf("request %s is stored as %s, want complete or expired", id, row.status)
		}
	}
	return rows
}

// natsURLOf reads the broker's client URL that rydes prints on stdout.
func natsURLOf(t *testing.T, s *server) string {
	t.Helper()
	const prefix = "providers connect to NATS at "
	stdout := s.logs[len(s.logs)-2]
	var url string
	rydestest.WaitFor(t, "rydes to print its NATS URL", func() bool {
		b, _ := os.ReadFile(stdout)
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			if u, ok := strings.CutPrefix(sc.Text(), prefix); ok {
				url = strings.TrimSpace(u)
				return true
			}
		}
		return false
	})
	return url
}

// checkEvents reads every request's events from RYDES_EVENTS (waiting for
// the outbox to publish what it still held) and checks them: numbered 1..n
// without gap or repeat, exactly one final event, last, agreeing with the
// stored status and event_seq. It returns the number of events read.
func checkEvents(t *testing.T, js jetstream.JetStream, rows map[string]storedRFQ) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*rydestest.WaitTimeout)
	defer cancel()
	cons, err := js.OrderedConsumer(ctx, bus.EventsStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{bus.EventSubjectPrefix + ">"},
	})
	if err != nil {
		t.Fatalf("events consumer: %v", err)
	}
	// The messages come in batches (one pull per message was a round trip
	// each: tens of thousands of events outlasted the context); the
	// context's end stops the iterator.
	iter, err := cons.Messages()
	if err != nil {
		t.Fatalf("events consumer: %v", err)
	}
	defer iter.Stop()
	defer context.AfterFunc(ctx, iter.Stop)()
	evs := map[string][]rydes.Event{}
	total := 0
	var lastRead uint64 // stream sequence of the last message read
	read := func() error {
		msg, err := iter.Next()
		if err != nil {
			return err
		}
		got, err := bus.DecodeEvents(msg)
		if err != nil {
			t.Fatalf("events on %s: %v", msg.Subject(), err)
		}
		md, err := msg.Metadata()
		if err != nil {
			t.Fatalf("events on %s: metadata: %v", msg.Subject(), err)
		}
		lastRead = md.Sequence.Stream
		evs[got[0].RFQID] = append(evs[got[0].RFQID], got...)
		total += len(got)
		return nil
	}
	complete := func() bool {
		for id, row := range rows {
			e := evs[id]
			if len(e) == 0 || e[len(e)-1].Seq < row.eventSeq {
				return false
			}
		}
		return true
	}
	for !complete() {
		if err := read(); err != nil {
			missing := 0
			for id, row := range rows {
				if e := evs[id]; len(e) == 0 || e[len(e)-1].Seq < row.eventSeq {
					missing++
					if missing <= 5 {
						t.Errorf("events of %s: have %d, the database says %d", id, len(e), row.eventSeq)
					}
				}
			}
			t.Fatalf("reading events: %v (%v): %d requests lack events (%d read)", err, ctx.Err(), missing, total)
		}
	}
	// Anything on the stream after every expected event is a duplicate or
	// stray: read up to its last message.
	stream, err := js.Stream(ctx, bus.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	for lastRead < stream.CachedInfo().State.LastSeq {
		if err := read(); err != nil {
			t.Fatalf("read trailing events: %v (%v)", err, ctx.Err())
		}
	}

	bad := 0
	report := func(format string, args ...any) {
		bad++
		if bad <= 20 {
			t.Errorf(format, args...)
		}
	}
	for id, e := range evs {
		row, ok := rows[id]
		if !ok {
			report("events for %s, which is not in the database", id)
			continue
		}
		finals := 0
		for i, ev := range e {
			if ev.Seq != int64(i+1) {
				report("events of %s: #%d has seq %d (gap or repeat); seqs %v", id, i+1, ev.Seq, seqs(e))
				break
			}
			if ev.Type.Final() {
				finals++
			}
		}
		if finals != 1 {
			report("events of %s: %d final events, want exactly 1; types %v", id, finals, types(e))
		}
		last := e[len(e)-1]
		if int64(len(e)) != row.eventSeq {
			report("events of %s: %d on the stream, the database says %d", id, len(e), row.eventSeq)
		}
		if !last.Type.Final() || string(last.Type) != string(row.status) {
			report("events of %s: last is %s, the request is %s", id, last.Type, row.status)
		}
		if e[0].Type != rydes.EventCreated {
			report("events of %s: first is %s, want created", id, e[0].Type)
		}
	}
	if bad > 20 {
		t.Errorf("… and %d more event errors", bad-20)
	}
	return total
}

func seqs(e []rydes.Event) []int64 {
	s := make([]int64, len(e))
	for i, ev := range e {
		s[i] = ev.Seq
	}
	return s
}

func types(e []rydes.Event) []rydes.EventType {
	s := make([]rydes.EventType, len(e))
	for i, ev := range e {
		s[i] = ev.Type
	}
	return s
}

// checkQueuesDrained waits for every provider's queue to have nothing
// pending and nothing unacknowledged: every request was answered (its
// answer staged, or refused and recorded) or acknowledged past its
// deadline. A request a killed process held comes back after the ack wait,
// hence the longer bound.
func checkQueuesDrained(t *testing.T, js jetstream.JetStream) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), ackWaitBound)
	defer cancel()
	s, err := js.Stream(ctx, bus.DispatchStream)
	if err != nil {
		t.Fatalf("dispatch stream: %v", err)
	}
	var queues []string
	names := s.ConsumerNames(ctx)
	for n := range names.Name() {
		queues = append(queues, n)
	}
	if err := names.Err(); err != nil {
		t.Fatalf("list provider queues: %v", err)
	}
	if len(queues) == 0 {
		t.Fatal("no provider queues")
	}
	deadline := time.Now().Add(ackWaitBound)
	for _, q := range queues {
		cons, err := s.Consumer(ctx, q)
		if err != nil {
			t.Fatalf("queue %s: %v", q, err)
		}
		for first := true; ; first = false {
			info, err := cons.Info(ctx)
			if first && err == nil && (info.NumPending != 0 || info.NumAckPending != 0) {
				t.Logf("queue %s after restart: %d pending, %d unacknowledged (waiting up to %v)", q, info.NumPending, info.NumAckPending, ackWaitBound)
			}
			if err == nil && info.NumPending == 0 && info.NumAckPending == 0 {
				break
			}
			if time.Now().After(deadline) {
				if err != nil {
					t.Fatalf("queue %s info: %v", q, err)
				}
				t.Fatalf("queue %s not drained after %v: %d pending, %d unacknowledged", q, ackWaitBound, info.NumPending, info.NumAckPending)
			}
			time.Sleep(50 * time.Millisecond) // polling the broker's state, as rydestest.WaitFor does
		}
	}
	t.Logf("%d provider queues drained", len(queues))
}
