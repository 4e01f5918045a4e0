/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Per-link defaults, named after their config key (DESIGN.md, "Defaults").
 * Durations are milliseconds unless the name says otherwise. */

#define STM32_DEFAULT_PORT 8080
#define STM32_DEFAULT_AUTOCONNECT TRUE
#define STM32_DEFAULT_FRAMING STM32_FRAMING_LINE
#define STM32_DEFAULT_MAX_FRAME 65536
#define STM32_DEFAULT_CONNECT_TIMEOUT 3000
#define STM32_DEFAULT_CLOSE_TIMEOUT 1000
#define STM32_DEFAULT_RETRY_MIN 250
#define STM32_DEFAULT_RETRY_MAX 30000
#define STM32_DEFAULT_RETRY_RESET_AFTER 10000
#define STM32_DEFAULT_BUSY_WINDOW 500
#define STM32_DEFAULT_BUSY_BACKOFF 2000
#define STM32_DEFAULT_KEEPALIVE_IDLE_S 5
#define STM32_DEFAULT_KEEPALIVE_INTERVAL_S 1
#define STM32_DEFAULT_KEEPALIVE_COUNT 3
/* Equal to idle + interval × count, so the kernel's two dead-peer detectors agree. */
#define STM32_DEFAULT_USER_TIMEOUT 8000
#define STM32_DEFAULT_IDLE_TIMEOUT 0
#define STM32_DEFAULT_HEARTBEAT_INTERVAL 5000
#define STM32_DEFAULT_HEARTBEAT_TIMEOUT 2000
#define STM32_DEFAULT_SEND_QUEUE_MAX (1024 * 1024)
#define STM32_DEFAULT_REPLY_GRACE 2000
#define STM32_DEFAULT_CLOSE_MODE STM32_CLOSE_MODE_AUTO

/* The largest config file stm32d reads: a board takes a few hundred bytes,
 * so anything near this is the wrong file (a log, /dev/zero), refused at
 * once rather than read whole. */
#define STM32_CONFIG_FILE_MAX (1024 * 1024)

/* Not config keys: how much a link remembers and reads at once. */
#define STM32_HISTORY_SIZE 64
#define STM32_READ_CHUNK 16384
/* Longest pause between checks that the board acknowledged a Send: about
 * half lwIP's delayed-ACK timer, so a quiet board's ACK is seen promptly. */
#define STM32_CONFIRM_POLL_MAX_MS 128
/* Transact: the longest timeout a caller may ask for, and how many
 * transactions may wait per link (each is a little memory and a D-Bus call
 * kept open). */
#define STM32_TRANSACT_TIMEOUT_MAX 600000
#define STM32_TRANSACT_QUEUE_MAX 100000
/* Written requests in a row that get no reply even ReplyGrace after their
 * callers gave up, before the link stops trusting the pairing and reconnects. */
#define STM32_OUT_OF_STEP_AFTER 3
/* How often ReplyGrace starts again because the board's bytes wait unread
 * when it runs out (the reply may be among them) before the late reply is
 * given up anyway: a board that keeps sending what forms no frame cannot
 * keep a request's place for ever. */
#define STM32_REPLY_GRACE_READS_MAX 4
/* OpenTransactChannel: each open channel is an fd in the daemon. */
#define STM32_TRANSACT_CHANNELS_MAX 64
/* OpenSendChannel: the same for send channels; and the frames one may have
 * unanswered before stm32d stops reading it, which bounds what a stream
 * costs the daemon whatever the board's window. */
#define STM32_SEND_CHANNELS_MAX 64
#define STM32_SEND_CHANNEL_UNANSWERED_MAX 4096
/* How often a channel that waits for room held by other senders looks again. */
#define STM32_SEND_CHANNEL_ROOM_POLL_MS 5

/* What a graceful shutdown may take beyond the longest CloseTimeout before
 * stm32d exits anyway; also how long beyond it a replacing stm32d waits for
 * the one it replaces to let go of a board. */
#define STM32_CLOSE_GRACE_MS 2000

/* Link1's counters go out in PropertiesChanged at most this often: a busy
 * link would otherwise signal every frame to every client. */
#define STM32_COUNTER_PUBLISH_MS 200

/* A bus caller stays tracked this long after its last request ended, so a
 * client making call after call is not looked up on the bus each time. */
#define STM32_CALLER_WATCH_LINGER_MS 2000

/* Received signals that GDBus may still hold, unwritten, per link: past
 * this the link stops reading from the board until the bus took them
 * (stm32-bus-backlog.h). Each signal counts its frame plus a share for
 * GDBus's message, header and queue entry, so that a flood of tiny frames is
 * bounded in memory too. */
#define STM32_RECEIVED_BACKLOG_MAX (4 * 1024 * 1024)
#define STM32_RECEIVED_SIGNAL_COST 512

/* AcquireStream: bytes from the board that may wait for the holder to read
 * them, and the most taken from the holder at once (less if SendQueueMax is
 * smaller). */
#define STM32_STREAM_BUFFER_MAX (1024 * 1024)
#define STM32_STREAM_READ_CHUNK 65536

/* The doctor's capacity probe: default and largest number of extra
 * connections it opens, and the clean connect/close cycles before it counts. */
#define STM32_PROBE_DEFAULT_MAX 8
#define STM32_PROBE_MAX_MAX 32
#define STM32_PROBE_CYCLES 3
/* A board frees a slot on our RST only once it has processed it, which may
 * be after our next SYN arrives: after a close that needed one, the probe
 * waits BusyWindow before connecting again, and the release check tries
 * this often, BusyWindow apart. */
#define STM32_PROBE_VERIFY_TRIES 3

/* Backoff jitter: each delay is scaled by a random factor in [1 - J, 1 + J]. */
#define STM32_RETRY_JITTER 0.2

/* CloseMode=auto (stm32-close-learner.h): graceful closes in a row the board
 * left without a FIN before it is taken for firmware that ignores EOF; the
 * learned close that re-checks first, and the longest interval doubling gets
 * to; how many FIN delays the adaptive wait looks at, its factor and floor. */
#define STM32_CLOSE_LEARN_AFTER 3
#define STM32_CLOSE_RECHECK_FIRST 16
#define STM32_CLOSE_RECHECK_MAX 256
#define STM32_CLOSE_FIN_SAMPLES 8
#define STM32_CLOSE_WAIT_FACTOR 4
/* The floor is for good boards: between our FIN reaching its stack and its
 * close, a board's busy application loop (or a loaded PC reading the FIN)
 * can take a few hundred ms once in a while, and a RST then is what auto
 * must never give a board that closes. */
#define STM32_CLOSE_WAIT_FLOOR 250
/* How often a learned reset looks whether the board acknowledged everything. */
#define STM32_CLOSE_ACK_POLL_MS 1
