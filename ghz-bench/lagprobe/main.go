// lagprobe measures kvmesh's write-visible lag: at a fixed rate (open loop) it PUTs a unique key through the
// public REST API, and once the PUT is acknowledged ({"status":"queued"}, i.e. after the broker's confirm) it
// GETs the key until the value it wrote comes back. lag = first GET that sees the value - acknowledgement.
// GETs start 1 ms apart and back off to a tenth of the time waited so far; -probe-every N probes every Nth write
// only, so that the probing GETs stay a small part of the load at high write rates.
// With -watch the probe does not poll: it holds one Watch stream (GET /kv/watch, newline-delimited JSON) on the
// probed keys' prefix, and lag = arrival of the key's PUT event - acknowledgement. The applier publishes a batch's
// events only after PostgreSQL committed it and Redis holds it, so by the time the event arrives every replica's
// GET returns the value: this is an upper bound of the GET-visible lag, measured without adding read load.
// Prints one JSON object: ack and lag percentiles in milliseconds, counts, achieved rate.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	base := flag.String("url", "http://127.0.0.1:8088", "kvmesh REST base URL")
	rate := flag.Int("rate", 1000, "writes per second (open loop)")
	dur := flag.Duration("duration", 10*time.Second, "how long to send")
	valueBytes := flag.Int("value-bytes", 256, "value size")
	poll := flag.Duration("poll", time.Millisecond, "shortest pause between GETs of one key (grows to a tenth of the time waited so far)")
	every := flag.Int("probe-every", 1, "probe visibility of every Nth write only (all writes are still sent)")
	timeout := flag.Duration("timeout", 5*time.Second, "give up on one key after this long")
	prefix := flag.String("prefix", fmt.Sprintf("lag-%d", time.Now().UnixNano()), "key prefix")
	token := flag.String("token", os.Getenv("KVMESH_BENCH_TOKEN"), "bearer token for a stack with auth on (default $KVMESH_BENCH_TOKEN)")
	watch := flag.Bool("watch", false, "measure lag by a Watch stream's PUT events instead of polling GETs")
	flag.Parse()
	bearer := ""
	if *token != "" {
		bearer = "Bearer " + *token
	}
	var seenAt sync.Map  // key -> time its PUT event arrived (-watch)
	var arrived sync.Map // key -> chan struct{} closed on arrival (-watch)
	waitFor := func(key string) chan struct{} {
		c, _ := arrived.LoadOrStore(key, make(chan struct{}))
		return c.(chan struct{})
	}
	if *watch {
		if err := openWatch(*base, *prefix+"/p", bearer, func(key string, at time.Time) {
			if _, dup := seenAt.LoadOrStore(key, at); !dup {
				close(waitFor(key))
			}
		}); err != nil {
			fmt.Fprintln(os.Stderr, "lagprobe: watch:", err)
			os.Exit(1)
		}
	}

	client := &http.Client{
		Timeout:   *timeout,
		Transport: &http.Transport{MaxIdleConns: 4096, MaxIdleConnsPerHost: 4096, IdleConnTimeout: 60 * time.Second},
	}
	pad := strings.Repeat("x", *valueBytes)
	var mu sync.Mutex
	var acks, lags []float64
	var sent, putErrors, timeouts int64
	var wg sync.WaitGroup

	interval := time.Second / time.Duration(*rate)
	start := time.Now()
	end := start.Add(*dur)
	for i := 0; ; i++ {
		next := start.Add(time.Duration(i) * interval)
		if next.After(end) {
			break
		}
		if d := time.Until(next); d > 0 {
			time.Sleep(d)
		}
		atomic.AddInt64(&sent, 1)
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			probed := i%*every == 0
			key := fmt.Sprintf("%s/n-%d", *prefix, i)
			if probed {
				key = fmt.Sprintf("%s/p-%d", *prefix, i)
			}
			val := fmt.Sprintf("%d-", i) + pad
			val = val[:*valueBytes]
			body, _ := json.Marshal(map[string]string{"key": key, "value": val})
			t0 := time.Now()
			req, _ := http.NewRequest(http.MethodPut, *base+"/api", bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			if bearer != "" {
				req.Header.Set("Authorization", bearer)
			}
			resp, err := client.Do(req)
			if err != nil {
				atomic.AddInt64(&putErrors, 1)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				atomic.AddInt64(&putErrors, 1)
				return
			}
			t1 := time.Now()
			if probed && *watch {
				select {
				case <-waitFor(key):
					t2, _ := seenAt.Load(key)
					lag := t2.(time.Time).Sub(t1)
					if lag < 0 {
						lag = 0 // applied (and its event sent) before the acknowledgement reached us
					}
					mu.Lock()
					acks = append(acks, float64(t1.Sub(t0).Microseconds())/1000)
					lags = append(lags, float64(lag.Microseconds())/1000)
					mu.Unlock()
				case <-time.After(*timeout):
					atomic.AddInt64(&timeouts, 1)
				}
				return
			}
			if !probed {
				mu.Lock()
				acks = append(acks, float64(t1.Sub(t0).Microseconds())/1000)
				mu.Unlock()
				return
			}
			needle := []byte(val)
			for {
				get, _ := http.NewRequest(http.MethodGet, *base+"/api?key="+key, nil)
				if bearer != "" {
					get.Header.Set("Authorization", bearer)
				}
				r, err := client.Do(get)
				if err == nil {
					b, _ := io.ReadAll(r.Body)
					r.Body.Close()
					if r.StatusCode == 200 && bytes.Contains(b, needle) {
						t2 := time.Now()
						mu.Lock()
						acks = append(acks, float64(t1.Sub(t0).Microseconds())/1000)
						lags = append(lags, float64(t2.Sub(t1).Microseconds())/1000)
						mu.Unlock()
						return
					}
				}
				waited := time.Since(t1)
				if waited > *timeout {
					atomic.AddInt64(&timeouts, 1)
					return
				}
				// bounded probing load when the stack falls behind: precision stays within 10% of the lag
				if pause := waited / 10; pause > *poll {
					time.Sleep(pause)
				} else {
					time.Sleep(*poll)
				}
			}
		}(i)
	}
	sendTime := time.Since(start).Seconds()
	wg.Wait()
	out := map[string]any{
		"rate_offered": *rate, "sent": sent, "put_errors": putErrors, "timeouts": timeouts,
		"seen": len(lags), "probe_every": *every, "acked": len(acks), "achieved_rate": float64(sent) / sendTime,
		"ack_ms": pct(acks), "lag_ms": pct(lags), "poll_ms": float64(poll.Microseconds()) / 1000, "watch": *watch,
	}
	json.NewEncoder(os.Stdout).Encode(out)
}

func pct(v []float64) map[string]float64 {
	if len(v) == 0 {
		return map[string]float64{}
	}
	sort.Float64s(v)
	at := func(q float64) float64 {
		i := int(q*float64(len(v))+0.5) - 1
		if i < 0 {
			i = 0
		}
		if i >= len(v) {
			i = len(v) - 1
		}
		return v[i]
	}
	return map[string]float64{"p50": at(0.50), "p99": at(0.99), "p999": at(0.999), "max": v[len(v)-1]}
}

// openWatch starts a Watch stream on prefix through the REST API and calls seen for every PUT event, with the time
// it arrived, until the process ends. It returns once the stream is open (the PROGRESS event asked for at once
// brings the response headers: the transcoder holds them until a first message).
func openWatch(base, prefix, bearer string, seen func(key string, at time.Time)) error {
	req, _ := http.NewRequest(http.MethodGet, base+"/kv/watch?prefix="+prefix+"&progressNotify=true", nil)
	if bearer != "" {
		req.Header.Set("Authorization", bearer)
	}
	resp, err := (&http.Client{}).Do(req)
	if err != nil {
		return err
	}
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("status %d: %s", resp.StatusCode, b)
	}
	go func() {
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 16<<20)
		for sc.Scan() {
			at := time.Now()
			var ev struct {
				Type string `json:"type"`
				Key  string `json:"key"`
			}
			if json.Unmarshal(sc.Bytes(), &ev) == nil && ev.Type == "PUT" {
				seen(ev.Key, at)
			}
		}
	}()
	return nil
}
