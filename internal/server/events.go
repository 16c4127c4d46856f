package server

import (
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/den-dev/den/api"
	"github.com/den-dev/den/internal/errdefs"
)

// hubEvent is an event with what the hub filters it by.
type hubEvent struct {
	ev        api.Event
	owner     *caller // who started the operation it belongs to
	project   string
	operation string
	final     bool // the operation's last event
}

// subscriber is one /1.0/events listener.
type subscriber struct {
	ch        chan *hubEvent
	who       *caller
	types     map[string]bool
	projects  map[string]bool // empty: all the caller may see
	operation string          // only this operation's events, when set
	gone      chan struct{}   // closed when the hub drops it
	once      sync.Once
}

// hub fans events out to subscribers. A subscriber that cannot keep up is
// dropped (its websocket closes) rather than slowing the operations down.
type hub struct {
	mu   sync.Mutex
	subs map[*subscriber]bool
}

func newHub() *hub { return &hub{subs: map[*subscriber]bool{}} }

func (h *hub) add(s *subscriber) {
	h.mu.Lock()
	h.subs[s] = true
	h.mu.Unlock()
}

func (h *hub) remove(s *subscriber) {
	h.mu.Lock()
	delete(h.subs, s)
	h.mu.Unlock()
	s.once.Do(func() { close(s.gone) })
}

func (h *hub) closeAll() {
	h.mu.Lock()
	subs := h.subs
	h.subs = map[*subscriber]bool{}
	h.mu.Unlock()
	for s := range subs {
		s.once.Do(func() { close(s.gone) })
	}
}

func (s *subscriber) wants(e *hubEvent) bool {
	if s.operation != "" {
		// That operation's events only; its last one ends the stream
		// whatever types were asked for.
		return e.operation == s.operation && (e.final || s.types[e.ev.Type])
	}
	if !s.types[e.ev.Type] {
		return false
	}
	if len(s.projects) > 0 && !s.projects[e.project] {
		return false
	}
	if s.who.admin() {
		return true
	}
	o := e.owner
	return o != nil && o.known && !o.tls && !o.admin() && o.uid == s.who.uid
}

// publish sends e to every subscriber that wants it, never blocking.
func (h *hub) publish(e *hubEvent) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs {
		if !s.wants(e) {
			continue
		}
		select {
		case s.ch <- e:
		default:
			delete(h.subs, s)
			s.once.Do(func() { close(s.gone) })
		}
	}
}

var upgrader = websocket.Upgrader{
	HandshakeTimeout: 10 * time.Second,
	// Not a browser API: the socket's permissions and the caller's
	// identity decide, not an Origin header.
	CheckOrigin: func(*http.Request) bool { return true },
}

// handleEvents is GET /1.0/events: a websocket of JSON events.
// ?type=operation,lifecycle,progress (default all), ?project=ID[,ID],
// ?operation=UUID: that operation's events only, from its first one (its
// recorded progress is replayed), closing after its last.
func (s *Server) handleEvents(w http.ResponseWriter, r *http.Request) {
	c := s.callerOf(r)
	q := r.URL.Query()
	sub := &subscriber{ch: make(chan *hubEvent, 4096), who: c, types: map[string]bool{}, projects: map[string]bool{}, gone: make(chan struct{})}
	types := q.Get("type")
	if types == "" {
		types = "operation,lifecycle,progress"
	}
	for _, t := range strings.Split(types, ",") {
		switch t {
		case api.EventOperation, api.EventLifecycle, api.EventProgress:
			sub.types[t] = true
		default:
			s.fail(w, r, errdefs.Newf(errdefs.Invalid, "unknown event type %q: use operation, lifecycle or progress", t))
			return
		}
	}
	for _, p := range strings.Split(q.Get("project"), ",") {
		if p != "" {
			sub.projects[p] = true
		}
	}
	var replay []*hubEvent
	if id := q.Get("operation"); id != "" {
		op, ok := s.ops.get(id)
		if !ok || !op.visibleTo(c) {
			s.fail(w, r, errdefs.Newf(errdefs.NotFound, "operation %q not found", id))
			return
		}
		sub.operation = id
		// Replay what it recorded and subscribe under its lock, so no event
		// falls between the two.
		op.mu.Lock()
		for _, pe := range op.events {
			replay = append(replay, op.eventFor(api.EventProgress, pe))
		}
		state := op.eventFor(api.EventOperation, op.apiLocked(false))
		replay = append(replay, state)
		if !state.final {
			s.hub.add(sub)
		}
		op.mu.Unlock()
	} else {
		s.hub.add(sub)
	}
	defer s.hub.remove(sub)

	conn, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader answered
	}
	defer conn.Close()
	// A reader notices the peer going away.
	peerGone := make(chan struct{})
	go func() {
		defer close(peerGone)
		for {
			if _, _, err := conn.NextReader(); err != nil {
				return
			}
		}
	}()
	// send writes e if the subscriber asked for its type, and tells
	// whether more may follow.
	send := func(e *hubEvent) bool {
		if sub.types[e.ev.Type] {
			conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
			if err := conn.WriteJSON(e.ev); err != nil {
				return false
			}
		}
		return !(sub.operation != "" && e.final)
	}
	for _, e := range replay {
		if !send(e) {
			s.closeWS(conn)
			return
		}
	}
	ping := time.NewTicker(30 * time.Second)
	defer ping.Stop()
	for {
		select {
		case e := <-sub.ch:
			if !send(e) {
				s.closeWS(conn)
				return
			}
		case <-ping.C:
			conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
			if conn.WriteMessage(websocket.PingMessage, nil) != nil {
				return
			}
		case <-sub.gone:
			// Dropped (too slow) or the server stops: drain what is queued.
			for {
				select {
				case e := <-sub.ch:
					if !send(e) {
						s.closeWS(conn)
						return
					}
				default:
					s.closeWS(conn)
					return
				}
			}
		case <-peerGone:
			return
		}
	}
}

func (s *Server) closeWS(conn *websocket.Conn) {
	conn.SetWriteDeadline(time.Now().Add(time.Second))
	conn.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""))
}
