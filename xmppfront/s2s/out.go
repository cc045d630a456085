package s2s

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"verlauf.im/verlauf/xmppfront/stanza"
	"verlauf.im/verlauf/xmppfront/stream"
)

// outbound is our one stream to a remote domain: a queue that fills while
// the stream is set up and drains in order once it is.
type outbound struct {
	s      *Server
	domain string
	log    *logrus.Entry

	mu     sync.Mutex
	queue  []*stream.Element
	closed bool // takes nothing more; SendRemote starts another stream
	wake   chan struct{}
}

func newOutbound(s *Server, domain string) *outbound {
	return &outbound{
		s: s, domain: domain, wake: make(chan struct{}, 1),
		log: s.cfg.Log.WithField("peer", domain),
	}
}

// enqueue adds st to the queue; queued is false if the stream is closing,
// full if the queue is at its bound.
func (o *outbound) enqueue(st *stream.Element) (queued, full bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return false, false
	}
	if len(o.queue) >= o.s.cfg.QueueLen {
		return false, true
	}
	o.queue = append(o.queue, st)
	select {
	case o.wake <- struct{}{}:
	default:
	}
	return true, false
}

// take empties the queue; with close it also stops it taking more.
func (o *outbound) take(close bool) []*stream.Element {
	o.mu.Lock()
	defer o.mu.Unlock()
	q := o.queue
	o.queue = nil
	if close {
		o.closed = true
	}
	return q
}

func (o *outbound) run() {
	ctx, cancel := context.WithTimeout(o.s.ctx, o.s.cfg.ConnectTimeout)
	pc, err := o.s.dial(ctx, o.domain)
	if err == nil {
		if err = pc.authenticate(); err != nil {
			pc.close()
			if ctx.Err() != nil {
				err = errors.Join(ErrTimeout, err)
			}
		}
	}
	cancel()
	if err != nil {
		o.log.WithError(err).Info("s2s: cannot reach peer")
		o.s.retire(o)
		cond := stanza.RemoteServerNotFound
		if errors.Is(err, ErrTimeout) {
			cond = stanza.RemoteServerTimeout
		}
		for _, st := range o.take(true) {
			o.s.bounce(st, cond)
		}
		return
	}
	_ = pc.raw.SetDeadline(time.Time{})
	o.log.WithFields(logrus.Fields{"verified": pc.verified, "method": pc.method}).Info("s2s: outbound stream ready")
	o.serve(pc)
}

// serve writes the queue as it fills until the stream is idle, the peer
// closes it or the server shuts down.
func (o *outbound) serve(pc *peerConn) {
	dead := make(chan struct{})
	go func() {
		// The peer sends nothing on our stream but keepalives, its
		// closing tag or a stream error; all end the wait.
		defer close(dead)
		for {
			el, err := pc.r.Next()
			if err != nil {
				return
			}
			if se, ok := stream.ParseStreamError(el); ok {
				o.log.WithError(se).Info("s2s: peer ended our stream")
				return
			}
		}
	}()
	idle := time.NewTimer(o.s.cfg.IdleTimeout)
	defer idle.Stop()
	for {
		batch := o.take(false)
		for i, st := range batch {
			_ = pc.raw.SetWriteDeadline(time.Now().Add(o.s.cfg.WriteTimeout))
			if err := pc.w.WriteElement(st); err != nil {
				o.log.WithError(err).Info("s2s: write to peer failed")
				o.s.retire(o)
				pc.close()
				o.requeue(append(batch[i:], o.take(true)...))
				return
			}
		}
		if len(batch) > 0 {
			if !idle.Stop() {
				select {
				case <-idle.C:
				default:
				}
			}
			idle.Reset(o.s.cfg.IdleTimeout)
		}
		select {
		case <-o.wake:
			continue
		case <-idle.C:
			if rest := o.take(true); len(rest) > 0 {
				o.requeue(rest)
			}
			o.log.Debug("s2s: closing idle outbound stream")
		case <-dead:
			o.requeue(o.take(true))
		case <-o.s.ctx.Done():
			for _, st := range o.take(true) {
				o.s.bounce(st, stanza.RemoteServerTimeout)
			}
		}
		o.s.retire(o)
		pc.close()
		<-dead
		return
	}
}

// requeue hands stanzas caught by a closing stream to a new one; they
// bounce if it cannot be set up.
func (o *outbound) requeue(sts []*stream.Element) {
	o.s.retire(o)
	for _, st := range sts {
		if err := o.s.SendRemote(o.s.ctx, st); err != nil {
			var se *stanza.Error
			cond := stanza.RemoteServerTimeout
			if errors.As(err, &se) {
				cond = se.Condition
			}
			o.s.bounce(st, cond)
		}
	}
}
