//! The relay load benchmark (`relay-bench`): N simulated calls through one media sidecar
//! pinned to one core, with `openai-sim` in echo mode, every frame timed end to end.
//!
//! - [`load`]: the Twilio side of each call, lean enough for hundreds per core; frame ids
//!   in the audio give round trips, loss, duplicates and misrouting.
//! - [`system`]: the real processes under test, pinned with `taskset`, measured from
//!   `/proc`.
//! - [`floor`]: a trivial echo server, the harness's own floor.
//! - [`bare`]: a bare relay with no control plane, to calibrate against.
//! - [`figures`]: what a run prints.
//!
//! The event feed benchmark (`events-bench`, [`events`]) is separate: an item stored
//! through one control-plane replica, timed to a watcher of another, under the write
//! load of N calls; its figures are in [`events`]'s docs.
//!
//! The campaign benchmark (`campaign-bench`, [`campaign`]) runs a control plane in
//! process: `import` uploads a campaign's targets in batches and times them; its
//! figures are in [`campaign`]'s docs.
//!
//! # Figures
//!
//! Kept here and in the README's "Performance" section; the README has the reading.
//!
//! Measured 2026-11-28 on the 2-core shared machine, sidecar on core 0, load on core 1,
//! 20 s windows (`relay-bench --calls 100,200,400,600,800 --floor --bare`):
//!
//! ```text
//! target    calls    p50 ms    p99 ms  p99.9 ms    max ms    lost  CPU ms/c·s   KiB/call load core  held
//! floor       100      0.06      0.22      2.48      4.39       0       0.685       14.4       11%  yes
//! bare        100      0.19     20.86     21.39     42.77       0       1.810       21.4       26%  yes
//! sidecar     100      0.20      0.55      4.10      6.48       0       2.100       58.2       25%  yes
//! floor       200      0.11      0.32      2.92      7.54       0       0.677       13.3       20%  yes
//! bare        200      0.45      1.65      7.30      9.66       0       1.758       17.4       49%  yes
//! sidecar     200      0.39      1.85      7.87     16.79       0       2.013       53.6       41%  yes
//! floor       400      0.18      0.56      4.54      6.99       0       0.641       12.3       33%  yes
//! bare        400      0.77     21.86     31.08     45.47       0       1.515       15.8       69%  yes
//! sidecar     400      0.74     21.76     34.48     50.76       0       1.664       49.3       68%  yes
//! floor       600      0.24      1.12      5.03     11.66       0       0.543       12.0       44%  yes
//! bare        600     32.08     50.38     64.09     74.53       0       1.573       14.6       97%  yes
//! sidecar     600     41.98     90.35    152.34    211.25       0       1.651       53.2       97%  yes
//! floor       800      0.32      4.42     31.95     68.25       0       0.528       11.9       56%  yes
//! bare        800     67.74    141.28    170.21    215.79       0       1.208       20.6       98%  no
//! sidecar     800     96.28    165.17    184.97    227.76       0       1.212       51.8       96%  no
//! largest N held (0 lost, p99 ≤ 100 ms): 600 — the load core was saturated there
//! ```
//!
//! Runs earlier the same day gave the sidecar 1.73–1.93 ms per call-second at 200 calls;
//! the machine is shared, so compare targets within one run.

pub mod bare;
pub mod campaign;
pub mod events;
pub mod figures;
pub mod floor;
pub mod load;
pub mod system;
