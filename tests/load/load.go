// Package load is verlauf's load tool (`verlauf bench`): N users log in over
// STARTTLS with SASL, send presence, then chat with random online peers. It
// speaks plain XMPP to any server, so the same run measures verlauf,
// Prosody and ejabberd alike, and it checks what it measures: every
// message carries a unique id, and the report counts messages lost,
// duplicated or answered with an error.
package load

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
)

// Config is one load run.
type Config struct {
	Addr     string // host:port of the STARTTLS c2s listener
	Domain   string
	Users    int
	Prefix   string // usernames are Prefix + index
	Password string
	Mech     string // SASL mechanism, e.g. SCRAM-SHA-256
	Register bool   // create the accounts with in-band registration first
	TLS      *tls.Config
	// LoginConcurrency bounds logins in flight.
	LoginConcurrency int
	// Duration of the chat phase.
	Duration time.Duration
	// Rate is the offered load in messages/s across all users; 0 sends as
	// fast as each user's window allows (saturation).
	Rate float64
	// Window is how many of a user's messages may be unanswered (in
	// flight) at once in saturation mode.
	Window int
	// Drain bounds the wait for messages in flight after sending stops:
	// the wait ends when nothing is in flight, or when nothing has arrived
	// for Drain (a server that is still delivering a backlog is given the
	// time; one that has stopped is not).
	Drain time.Duration
	// ColdLogins skips the warm-up login. By default every user logs in
	// once and leaves before the measured logins, as a client that has
	// logged in before: the measured logins then reuse the SCRAM keys the
	// client derived (real clients cache them), so that logins/s measures
	// the server rather than the load tool's own PBKDF2.
	ColdLogins bool
	// ServerPID, if set, is sampled for RSS and CPU time.
	ServerPID int
	Log       io.Writer
}

// Report is what a run measured.
type Report struct {
	Users        int
	LoginErrors  int
	LoginSeconds float64
	LoginsPerSec float64
	// FirstLoginsPerSec is the warm-up pass, where the tool also runs
	// PBKDF2 for every user (0 with ColdLogins).
	FirstLoginsPerSec float64
	Sent              int64
	Delivered         int64 // including those that arrived while draining
	// DeliveredInTime arrived before sending stopped: the throughput
	// counts only these, since a backlog drained afterwards would
	// otherwise be credited to the chat time.
	DeliveredInTime int64
	Lost            int64
	Duplicates      int64
	Errors          int64
	ChatSeconds     float64
	DeliveredPerS   float64
	P50, P99, Max   time.Duration
	RSSBefore       int64 // bytes, after registration, before any login
	RSSAfterLogin   int64 // bytes, all users logged in with presence
	RSSPerUser      int64 // bytes
	CPUSecondsChat  float64
	CPUPer1000Msgs  float64 // server CPU seconds in chat per 1000 delivered in time
	// The archive check: after the run one user asks the server (XEP-0313,
	// RSM max 0) how many messages its archive holds, to show that
	// history is on. ArchiveCount is -1 when the server gave no count;
	// ArchiveNote says why. ArchiveExpected is what that user sent and
	// received in this run (a server that ran before holds more).
	ArchiveUser     string
	ArchiveCount    int64
	ArchiveExpected int64
	ArchiveNote     string
}

func (r Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "users %d, login errors %d\n", r.Users, r.LoginErrors)
	fmt.Fprintf(&b, "logins/s          %.1f (%.2fs for all)\n", r.LoginsPerSec, r.LoginSeconds)
	if r.FirstLoginsPerSec > 0 {
		fmt.Fprintf(&b, "first logins/s    %.1f (warm-up: the tool also derives SCRAM keys)\n", r.FirstLoginsPerSec)
	}
	fmt.Fprintf(&b, "messages          sent %d, delivered %d, lost %d, duplicated %d, errors %d\n", r.Sent, r.Delivered, r.Lost, r.Duplicates, r.Errors)
	fmt.Fprintf(&b, "delivered msg/s   %.1f over %.1fs (%d delivered in time)\n", r.DeliveredPerS, r.ChatSeconds, r.DeliveredInTime)
	fmt.Fprintf(&b, "latency           p50 %s, p99 %s, max %s\n", r.P50, r.P99, r.Max)
	if r.RSSAfterLogin > 0 {
		fmt.Fprintf(&b, "server RSS        %.1f MiB before, %.1f MiB after login, %.1f KiB per user\n",
			float64(r.RSSBefore)/(1<<20), float64(r.RSSAfterLogin)/(1<<20), float64(r.RSSPerUser)/1024)
		fmt.Fprintf(&b, "server CPU        %.2fs in chat, %.3fs per 1000 messages\n", r.CPUSecondsChat, r.CPUPer1000Msgs)
	}
	if r.ArchiveUser != "" {
		fmt.Fprintf(&b, "archive           %s holds %d messages, sent+received in this run %d", r.ArchiveUser, r.ArchiveCount, r.ArchiveExpected)
		if r.ArchiveNote != "" {
			fmt.Fprintf(&b, " (%s)", r.ArchiveNote)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

type user struct {
	name string
	c    *conn
	wmu  sync.Mutex
	// inflight bounds unanswered messages in saturation mode.
	inflight chan struct{}
	// sent and received count this user's messages, for the archive
	// check; iqs receives IQ replies on the user whose archive is
	// checked (nil on the others).
	sent, received atomic.Int64
	iqs            chan element
}

// sendMsg writes one chat message; the body carries the id and the send
// time so the receiver can measure latency without shared clocks.
func (u *user) sendMsg(to string, id uint64, now time.Time) error {
	u.wmu.Lock()
	defer u.wmu.Unlock()
	return u.c.send(fmt.Sprintf(`<message type='chat' to='%s' id='m%d'><body>load %d %d</body></message>`, to, id, id, now.UnixNano()))
}

// withDefaults fills the fields left zero.
func (cfg Config) withDefaults() Config {
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	if cfg.LoginConcurrency <= 0 {
		cfg.LoginConcurrency = 50
	}
	if cfg.Window <= 0 {
		cfg.Window = 4
	}
	if cfg.Drain <= 0 {
		cfg.Drain = 5 * time.Second
	}
	return cfg
}

// Run performs the whole run.
func Run(ctx context.Context, cfg Config) (Report, error) {
	cfg = cfg.withDefaults()
	rep := Report{Users: cfg.Users}
	if cfg.Register {
		fmt.Fprintf(cfg.Log, "registering %d users\n", cfg.Users)
		if err := registerAll(ctx, cfg); err != nil {
			return rep, err
		}
	}

	// Sampled after registration, so that RSS per user counts what a
	// logged-in session costs rather than the account store; and before
	// the warm-up, so that memory those sessions left behind counts too
	// instead of hiding a first session's cost.
	rep.RSSBefore, _ = rss(cfg.ServerPID)
	keys := newKeyCache()
	if !cfg.ColdLogins {
		fmt.Fprintf(cfg.Log, "warm-up: logging in %d users once\n", cfg.Users)
		warm, failed, secs := loginAll(ctx, cfg, keys)
		for _, u := range warm {
			u.c.close()
		}
		if failed > 0 {
			fmt.Fprintf(cfg.Log, "warm-up: %d logins failed\n", failed)
		}
		rep.FirstLoginsPerSec = float64(len(warm)) / secs
		time.Sleep(time.Second) // let the server tear those sessions down
	}
	fmt.Fprintf(cfg.Log, "logging in %d users\n", cfg.Users)
	online, loginErrs, secs := loginAll(ctx, cfg, keys)
	rep.LoginSeconds = secs
	rep.LoginErrors = loginErrs
	rep.LoginsPerSec = float64(len(online)) / rep.LoginSeconds
	defer func() {
		for _, u := range online {
			u.c.close()
		}
	}()
	if len(online) < 2 {
		return rep, errors.New("fewer than two users logged in")
	}

	// Presence, and the readers that record what arrives.
	st := newStats(cfg.Users)
	byName := make(map[string]*user, len(online))
	for _, u := range online {
		byName[u.name] = u
	}
	online[0].iqs = make(chan element, 1)
	var readers sync.WaitGroup
	for _, u := range online {
		if err := u.c.send(`<presence/>`); err != nil {
			return rep, fmt.Errorf("presence %s: %w", u.name, err)
		}
		readers.Add(1)
		go func() {
			defer readers.Done()
			readLoop(u, st, byName)
		}()
	}
	time.Sleep(time.Second) // let presence settle before measuring memory
	rep.RSSAfterLogin, _ = rss(cfg.ServerPID)
	if rep.RSSAfterLogin > 0 {
		rep.RSSPerUser = (rep.RSSAfterLogin - rep.RSSBefore) / int64(len(online))
	}

	fmt.Fprintf(cfg.Log, "chatting for %s\n", cfg.Duration)
	cpu0, _ := cpuSeconds(cfg.ServerPID)
	chatStart := time.Now()
	sendCtx, stopSend := context.WithTimeout(ctx, cfg.Duration)
	var senders sync.WaitGroup
	var nextID atomic.Uint64
	send := func(u *user, rng *rand.Rand) bool {
		peer := online[rng.IntN(len(online))]
		for peer == u {
			peer = online[rng.IntN(len(online))]
		}
		id := nextID.Add(1)
		st.sent(id, u)
		if err := u.sendMsg(peer.c.jidBare(), id, time.Now()); err != nil {
			st.errs.Add(1)
			return false
		}
		u.sent.Add(1)
		return true
	}
	if cfg.Rate > 0 {
		// An open-loop schedule: one dispatcher sends each message when
		// it is due, from a random user, whatever the server's pace, so
		// that latency is measured at the offered rate.
		senders.Add(1)
		go func() {
			defer senders.Done()
			rng := rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
			start := time.Now()
			tick := time.NewTicker(time.Millisecond)
			defer tick.Stop()
			sent := 0
			for {
				select {
				case <-sendCtx.Done():
					return
				case now := <-tick.C:
					due := int(now.Sub(start).Seconds() * cfg.Rate)
					for ; sent < due; sent++ {
						send(online[rng.IntN(len(online))], rng)
					}
				}
			}
		}()
	} else {
		// Saturation: every user keeps Window messages in flight.
		for _, u := range online {
			senders.Add(1)
			go func() {
				defer senders.Done()
				rng := rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
				for {
					select {
					case <-sendCtx.Done():
						return
					case u.inflight <- struct{}{}:
					}
					if !send(u, rng) {
						return
					}
				}
			}()
		}
	}
	senders.Wait()
	sendDone := time.Now()
	stopSend()
	_, rep.DeliveredInTime, _, _ = st.totals()
	cpu1, _ := cpuSeconds(cfg.ServerPID)
	drain(ctx, st, cfg.Drain)
	probe := online[0]
	rep.ArchiveUser = probe.c.jidBare()
	rep.ArchiveExpected = probe.sent.Load() + probe.received.Load()
	rep.ArchiveCount, rep.ArchiveNote = archiveCount(ctx, probe)
	rep.ChatSeconds = sendDone.Sub(chatStart).Seconds()
	rep.Sent, rep.Delivered, rep.Duplicates, rep.Errors = st.totals()
	rep.Lost = rep.Sent - rep.Delivered - rep.Errors
	rep.DeliveredPerS = float64(rep.DeliveredInTime) / rep.ChatSeconds
	rep.P50, rep.P99, rep.Max = st.percentiles()
	if cpu1 > 0 {
		rep.CPUSecondsChat = cpu1 - cpu0
		if rep.DeliveredInTime > 0 {
			rep.CPUPer1000Msgs = rep.CPUSecondsChat / float64(rep.DeliveredInTime) * 1000
		}
	}
	return rep, nil
}

// loginAll logs every user in, LoginConcurrency at a time, and returns
// those online, the number that failed and the seconds it took.
func loginAll(ctx context.Context, cfg Config, keys *keyCache) ([]*user, int, float64) {
	users := make([]*user, cfg.Users)
	var loginErrs atomic.Int64
	start := time.Now()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(cfg.LoginConcurrency)
	for i := range users {
		g.Go(func() error {
			name := cfg.Prefix + strconv.Itoa(i)
			lctx, cancel := context.WithTimeout(gctx, 30*time.Second)
			defer cancel()
			c, err := dial(lctx, cfg.Addr, cfg.TLS, cfg.Domain)
			if err == nil {
				err = c.login(name, cfg.Password, cfg.Mech, "load", keys)
				if err != nil {
					c.raw.Close()
				}
			}
			if err != nil {
				if loginErrs.Add(1) <= 3 {
					fmt.Fprintf(cfg.Log, "login %s: %v\n", name, err)
				}
				return nil
			}
			c.raw.SetDeadline(time.Time{})
			users[i] = &user{name: name, c: c, inflight: make(chan struct{}, cfg.Window)}
			return nil
		})
	}
	g.Wait()
	secs := time.Since(start).Seconds()
	return slices.DeleteFunc(users, func(u *user) bool { return u == nil }), int(loginErrs.Load()), secs
}

// drain waits until nothing is in flight, or nothing has arrived for
// quiet.
func drain(ctx context.Context, st *stats, quiet time.Duration) {
	last, lastChange := st.answered(), time.Now()
	for st.pending() > 0 && time.Since(lastChange) < quiet && ctx.Err() == nil {
		time.Sleep(20 * time.Millisecond)
		if n := st.answered(); n != last {
			last, lastChange = n, time.Now()
		}
	}
}

func (c *conn) jidBare() string {
	if i := strings.IndexByte(c.jid, '/'); i >= 0 {
		return c.jid[:i]
	}
	return c.jid
}

func readLoop(u *user, st *stats, byName map[string]*user) {
	for {
		name, e, err := u.c.next()
		if err != nil {
			return
		}
		if name == "iq" && u.iqs != nil {
			select {
			case u.iqs <- e:
			default:
			}
			continue
		}
		if name != "message" {
			continue
		}
		if from, delivered := st.account(e); from != nil {
			if delivered {
				u.received.Add(1)
			}
			// Only saturation mode fills the window; at a fixed rate
			// there is nothing to release.
			select {
			case <-from.inflight:
			default:
			}
		}
	}
}

// account counts a load message that came back to the tool, delivered or
// bounced with an error, and returns its sender (nil if e is not one of
// the tool's messages, or was counted before) and whether it was a
// delivery.
func (st *stats) account(e element) (from *user, delivered bool) {
	if e.attr("type") == "error" {
		id, _ := strconv.ParseUint(strings.TrimPrefix(e.attr("id"), "m"), 10, 64)
		if id == 0 {
			return nil, false
		}
		return st.failed(id), false
	}
	id, sentAt, ok := parseLoadBody(e.Inner)
	if !ok {
		return nil, false
	}
	return st.delivered(id, time.Since(sentAt)), true
}

// archiveCount asks the server for the size of u's archive (XEP-0313 with
// an RSM page of zero items, which servers answer with the count alone).
func archiveCount(ctx context.Context, u *user) (int64, string) {
	u.wmu.Lock()
	err := u.c.send(`<iq type='set' id='mam-count'><query xmlns='urn:xmpp:mam:2'><set xmlns='http://jabber.org/protocol/rsm'><max>0</max></set></query></iq>`)
	u.wmu.Unlock()
	if err != nil {
		return -1, err.Error()
	}
	timeout := time.NewTimer(30 * time.Second)
	defer timeout.Stop()
	for {
		select {
		case <-ctx.Done():
			return -1, ctx.Err().Error()
		case <-timeout.C:
			return -1, "no answer to the archive query"
		case e := <-u.iqs:
			if e.attr("id") != "mam-count" {
				continue
			}
			return parseArchiveCount(e)
		}
	}
}

func parseArchiveCount(e element) (int64, string) {
	if e.attr("type") != "result" {
		return -1, "archive query refused: " + e.Inner
	}
	_, rest, ok := strings.Cut(e.Inner, "<count")
	if ok {
		_, rest, ok = strings.Cut(rest, ">")
	}
	if !ok {
		return -1, "the server gave no count"
	}
	text, _, _ := strings.Cut(rest, "<")
	n, err := strconv.ParseInt(strings.TrimSpace(text), 10, 64)
	if err != nil {
		return -1, "bad count " + text
	}
	return n, ""
}

// parseLoadBody finds the id and send time in a load message's inner XML.
// Servers add elements after the body (stanza-id, delay, …), so the body
// text ends at the next tag.
func parseLoadBody(inner string) (uint64, time.Time, bool) {
	_, rest, ok := strings.Cut(inner, ">load ")
	if !ok {
		return 0, time.Time{}, false
	}
	text, _, ok := strings.Cut(rest, "<")
	if !ok {
		return 0, time.Time{}, false
	}
	f := strings.Fields(text)
	if len(f) != 2 {
		return 0, time.Time{}, false
	}
	id, err1 := strconv.ParseUint(f[0], 10, 64)
	ns, err2 := strconv.ParseInt(f[1], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, time.Time{}, false
	}
	return id, time.Unix(0, ns), true
}

// stats tracks every message by id, so that losses and duplicates are
// counted, not guessed.
type stats struct {
	mu        sync.Mutex
	sender    map[uint64]*user // id → sender, while in flight
	seen      map[uint64]bool
	sentN     int64
	deliv     int64
	dups      int64
	errs      atomic.Int64
	latencies []time.Duration
}

func newStats(users int) *stats {
	return &stats{sender: make(map[uint64]*user, users*8), seen: make(map[uint64]bool, 1<<16)}
}

func (s *stats) sent(id uint64, u *user) {
	s.mu.Lock()
	s.sender[id] = u
	s.sentN++
	s.mu.Unlock()
}

func (s *stats) delivered(id uint64, lat time.Duration) *user {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.seen[id] {
		s.dups++
		return nil
	}
	s.seen[id] = true
	s.deliv++
	s.latencies = append(s.latencies, lat)
	u := s.sender[id]
	delete(s.sender, id)
	return u
}

func (s *stats) failed(id uint64) *user {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.errs.Add(1)
	u := s.sender[id]
	delete(s.sender, id)
	return u
}

// answered counts messages delivered or refused so far.
func (s *stats) answered() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.deliv + s.dups + s.errs.Load()
}

func (s *stats) pending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sender)
}

func (s *stats) totals() (sent, delivered, dups, errs int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sentN, s.deliv, s.dups, s.errs.Load()
}

func (s *stats) percentiles() (p50, p99, max time.Duration) {
	s.mu.Lock()
	l := slices.Clone(s.latencies)
	s.mu.Unlock()
	if len(l) == 0 {
		return 0, 0, 0
	}
	slices.Sort(l)
	return l[len(l)/2], l[len(l)*99/100], l[len(l)-1]
}

func registerAll(ctx context.Context, cfg Config) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(cfg.LoginConcurrency)
	for i := range cfg.Users {
		g.Go(func() error {
			name := cfg.Prefix + strconv.Itoa(i)
			rctx, cancel := context.WithTimeout(gctx, 30*time.Second)
			defer cancel()
			c, err := dial(rctx, cfg.Addr, cfg.TLS, cfg.Domain)
			if err != nil {
				return fmt.Errorf("register %s: %w", name, err)
			}
			defer c.close()
			return c.register(name, cfg.Password)
		})
	}
	return g.Wait()
}

// rss reads the resident set size of pid from /proc.
func rss(pid int) (int64, error) {
	if pid <= 0 {
		return 0, nil
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			kb, err := strconv.ParseInt(f[0], 10, 64)
			return kb * 1024, err
		}
	}
	return 0, errors.New("no VmRSS")
}

// cpuSeconds reads user+system CPU time of pid from /proc/<pid>/stat.
func cpuSeconds(pid int) (float64, error) {
	if pid <= 0 {
		return 0, nil
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name, which is in parentheses and may hold spaces.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseFloat(f[11], 64)
	stt, _ := strconv.ParseFloat(f[12], 64)
	const clkTck = 100 // USER_HZ on Linux
	return (ut + stt) / clkTck, nil
}
