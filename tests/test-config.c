/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gio/gio.h>
#include <glib/gstdio.h>

#include "stm32-config.h"
#include "stm32-defaults.h"
#include "stm32-error.h"

#define FILE_NAME "test.conf"

typedef struct
{
  const char *text;
  const char *message; /* expected, without the "test.conf:" in front */
} ErrorCase;

static GPtrArray *
load_ok (const char *text, guint n_links)
{
  g_autoptr (GError) error = NULL;
  GPtrArray *links = stm32_config_load_data (text, -1, FILE_NAME, &error);

  g_assert_no_error (error);
  g_assert_nonnull (links);
  g_assert_cmpuint (links->len, ==, n_links);
  return links;
}

static Stm32LinkConfig *
link_config (GPtrArray *links, guint index)
{
  return ((Stm32ConfigLink *) g_ptr_array_index (links, index))->config;
}

static void
assert_error (const char *text, gssize length, const char *message)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) links = stm32_config_load_data (text, length, FILE_NAME, &error);
  g_autofree char *expected = g_strconcat (FILE_NAME ":", message, NULL);

  g_assert_null (links);
  g_assert_error (error, STM32_ERROR, STM32_ERROR_INVALID_ARGS);
  g_assert_cmpstr (error->message, ==, expected);
}

static void
assert_errors (const ErrorCase *cases, gsize n_cases)
{
  for (gsize i = 0; i < n_cases; i++)
    {
      g_test_message ("config: %s", cases[i].text);
      assert_error (cases[i].text, -1, cases[i].message);
    }
}

/* ---- what a good file gives ---- */

static void
assert_defaults (const Stm32LinkConfig *config)
{
  g_assert_cmpuint (config->port, ==, STM32_DEFAULT_PORT);
  g_assert_cmpint (config->autoconnect, ==, STM32_DEFAULT_AUTOCONNECT);
  g_assert_cmpint (config->framing, ==, STM32_DEFAULT_FRAMING);
  g_assert_cmpuint (config->max_frame, ==, STM32_DEFAULT_MAX_FRAME);
  g_assert_cmpuint (config->connect_timeout, ==, STM32_DEFAULT_CONNECT_TIMEOUT);
  g_assert_cmpuint (config->close_timeout, ==, STM32_DEFAULT_CLOSE_TIMEOUT);
  g_assert_cmpint (config->close_mode, ==, STM32_CLOSE_MODE_AUTO);
  g_assert_cmpuint (config->retry_min, ==, STM32_DEFAULT_RETRY_MIN);
  g_assert_cmpuint (config->retry_max, ==, STM32_DEFAULT_RETRY_MAX);
  g_assert_cmpuint (config->retry_reset_after, ==, STM32_DEFAULT_RETRY_RESET_AFTER);
  g_assert_cmpuint (config->busy_window, ==, STM32_DEFAULT_BUSY_WINDOW);
  g_assert_cmpuint (config->busy_backoff, ==, STM32_DEFAULT_BUSY_BACKOFF);
  g_assert_cmpuint (config->keepalive_idle_s, ==, STM32_DEFAULT_KEEPALIVE_IDLE_S);
  g_assert_cmpuint (config->keepalive_interval_s, ==, STM32_DEFAULT_KEEPALIVE_INTERVAL_S);
  g_assert_cmpuint (config->keepalive_count, ==, STM32_DEFAULT_KEEPALIVE_COUNT);
  g_assert_cmpuint (config->user_timeout, ==, STM32_DEFAULT_USER_TIMEOUT);
  g_assert_cmpuint (config->idle_timeout, ==, STM32_DEFAULT_IDLE_TIMEOUT);
  g_assert_null (config->heartbeat);
  g_assert_cmpuint (config->heartbeat_interval, ==, STM32_DEFAULT_HEARTBEAT_INTERVAL);
  g_assert_cmpuint (config->heartbeat_timeout, ==, STM32_DEFAULT_HEARTBEAT_TIMEOUT);
  g_assert_cmpuint (config->send_queue_max, ==, STM32_DEFAULT_SEND_QUEUE_MAX);
}

static void
test_defaults (void)
{
  g_autoptr (GPtrArray) links = load_ok ("[Link bench]\nHost=board\n", 1);

  g_assert_cmpstr (((Stm32ConfigLink *) links->pdata[0])->name, ==, "bench");
  g_assert_cmpstr (link_config (links, 0)->host, ==, "board");
  assert_defaults (link_config (links, 0));
}

/* Every key, each with a value no other key and no default has. */
static const char every_key[] = "[Link all]\n"
                                "Host=fe80::1%eth0\n"
                                "Port=5001\n"
                                "Autoconnect=false\n"
                                "Framing=u32be\n"
                                "MaxFrame=1001\n"
                                "ConnectTimeout=1002\n"
                                "CloseTimeout=1003\n"
                                "CloseMode=reset\n"
                                "RetryMin=1004\n"
                                "RetryMax=1005\n"
                                "RetryResetAfter=1006\n"
                                "BusyWindow=1007\n"
                                "BusyBackoff=1008\n"
                                "KeepaliveIdle=11\n"
                                "KeepaliveInterval=12\n"
                                "KeepaliveCount=13\n"
                                "UserTimeout=1009\n"
                                "IdleTimeout=1010\n"
                                "Heartbeat=ping\n"
                                "HeartbeatInterval=1011\n"
                                "HeartbeatTimeout=1012\n"
                                "SendQueueMax=1013\n";

static void
test_every_key (void)
{
  g_autoptr (GPtrArray) links = load_ok (every_key, 1);
  Stm32LinkConfig *config = link_config (links, 0);

  g_assert_cmpstr (config->host, ==, "fe80::1%eth0");
  g_assert_cmpuint (config->port, ==, 5001);
  g_assert_false (config->autoconnect);
  g_assert_cmpint (config->framing, ==, STM32_FRAMING_U32BE);
  g_assert_cmpuint (config->max_frame, ==, 1001);
  g_assert_cmpuint (config->connect_timeout, ==, 1002);
  g_assert_cmpuint (config->close_timeout, ==, 1003);
  g_assert_cmpint (config->close_mode, ==, STM32_CLOSE_MODE_RESET);
  g_assert_cmpuint (config->retry_min, ==, 1004);
  g_assert_cmpuint (config->retry_max, ==, 1005);
  g_assert_cmpuint (config->retry_reset_after, ==, 1006);
  g_assert_cmpuint (config->busy_window, ==, 1007);
  g_assert_cmpuint (config->busy_backoff, ==, 1008);
  g_assert_cmpuint (config->keepalive_idle_s, ==, 11);
  g_assert_cmpuint (config->keepalive_interval_s, ==, 12);
  g_assert_cmpuint (config->keepalive_count, ==, 13);
  g_assert_cmpuint (config->user_timeout, ==, 1009);
  g_assert_cmpuint (config->idle_timeout, ==, 1010);
  g_assert_nonnull (config->heartbeat);
  g_assert_cmpmem (g_bytes_get_data (config->heartbeat, NULL), g_bytes_get_size (config->heartbeat),
                   "ping", 4);
  g_assert_cmpuint (config->heartbeat_interval, ==, 1011);
  g_assert_cmpuint (config->heartbeat_timeout, ==, 1012);
  g_assert_cmpuint (config->send_queue_max, ==, 1013);
}

static void
test_order (void)
{
  g_autoptr (GPtrArray) links =
      load_ok ("[Link zeta]\nHost=z\n[Link alpha]\nHost=a\nFraming=json\n[Link B_2]\nHost=b\n", 3);
  const char *names[] = { "zeta", "alpha", "B_2" };
  const char *hosts[] = { "z", "a", "b" };

  for (guint i = 0; i < links->len; i++)
    {
      g_assert_cmpstr (((Stm32ConfigLink *) links->pdata[i])->name, ==, names[i]);
      g_assert_cmpstr (link_config (links, i)->host, ==, hosts[i]);
    }
  g_assert_cmpint (link_config (links, 0)->framing, ==, STM32_FRAMING_LINE);
  g_assert_cmpint (link_config (links, 1)->framing, ==, STM32_FRAMING_JSON);
}

static void
test_no_links (void)
{
  const char *texts[] = { "", "\n", "# nothing here yet\n\n  # [Link x]\n" };

  for (guint i = 0; i < G_N_ELEMENTS (texts); i++)
    g_ptr_array_unref (load_ok (texts[i], 0));
}

static void
test_layout (void)
{
  /* Whitespace around "=", indentation, tabs, CRLF, trailing blanks. */
  g_autoptr (GPtrArray) links = load_ok ("# board\r\n"
                                         "  [Link bench]  \r\n"
                                         "\r\n"
                                         "\tHost = board.lab \r\n"
                                         "  Port\t=\t9000\t\r\n"
                                         "Autoconnect= false  \r\n"
                                         "Framing =raw\r\n",
                                         1);
  Stm32LinkConfig *config = link_config (links, 0);

  g_assert_cmpstr (config->host, ==, "board.lab");
  g_assert_cmpuint (config->port, ==, 9000);
  g_assert_false (config->autoconnect);
  g_assert_cmpint (config->framing, ==, STM32_FRAMING_RAW);
}

static void
test_booleans (void)
{
  g_autoptr (GPtrArray) links = load_ok ("[Link a]\nHost=ha\nAutoconnect=false\n"
                                         "[Link b]\nHost=hb\nAutoconnect=true\n"
                                         "[Link c]\nHost=hc\nAutoconnect=0\n",
                                         3);

  g_assert_false (link_config (links, 0)->autoconnect);
  g_assert_true (link_config (links, 1)->autoconnect);
  g_assert_false (link_config (links, 2)->autoconnect);
}

static void
test_units (void)
{
  g_autoptr (GPtrArray) links = load_ok ("[Link a]\nHost=h\n"
                                         "ConnectTimeout=5s\n"
                                         "CloseTimeout=750ms\n"
                                         "RetryMax=2 s\n"
                                         "IdleTimeout=4294967s\n"
                                         "KeepaliveIdle=7s\n"
                                         "MaxFrame=4KiB\n"
                                         "SendQueueMax=2 MiB\n",
                                         1);
  Stm32LinkConfig *config = link_config (links, 0);

  g_assert_cmpuint (config->connect_timeout, ==, 5000);
  g_assert_cmpuint (config->close_timeout, ==, 750);
  g_assert_cmpuint (config->retry_max, ==, 2000);
  g_assert_cmpuint (config->idle_timeout, ==, 4294967000u);
  g_assert_cmpuint (config->keepalive_idle_s, ==, 7);
  g_assert_cmpuint (config->max_frame, ==, 4096);
  g_assert_cmpuint (config->send_queue_max, ==, 2 * 1024 * 1024);
}

static void
test_limits (void)
{
  g_autoptr (GPtrArray) links = load_ok ("[Link a]\nHost=h\n"
                                         "Port=65535\n"
                                         "KeepaliveIdle=32767\n"
                                         "KeepaliveInterval=32767\n"
                                         "KeepaliveCount=127\n"
                                         "UserTimeout=2147483647\n"
                                         "IdleTimeout=4294967295\n"
                                         "RetryResetAfter=0\n"
                                         "BusyWindow=0\n"
                                         "BusyBackoff=0\n"
                                         "MaxFrame=0004294967295\n"
                                         "SendQueueMax=4294967295\n",
                                         1);
  Stm32LinkConfig *config = link_config (links, 0);

  g_assert_cmpuint (config->port, ==, 65535);
  g_assert_cmpuint (config->keepalive_count, ==, 127);
  g_assert_cmpuint (config->user_timeout, ==, G_MAXINT);
  g_assert_cmpuint (config->idle_timeout, ==, G_MAXUINT);
  g_assert_cmpuint (config->retry_reset_after, ==, 0);
  g_assert_cmpuint (config->max_frame, ==, G_MAXUINT);
}

static void
assert_heartbeat (const char *line, const void *expected, gsize expected_len)
{
  g_autofree char *text = g_strdup_printf ("[Link a]\nHost=h\nFraming=raw\n%s\n", line);
  g_autoptr (GPtrArray) links = load_ok (text, 1);
  GBytes *heartbeat = link_config (links, 0)->heartbeat;

  if (expected == NULL)
    {
      g_assert_null (heartbeat);
      return;
    }
  g_assert_nonnull (heartbeat);
  g_assert_cmpmem (g_bytes_get_data (heartbeat, NULL), g_bytes_get_size (heartbeat), expected,
                   expected_len);
}

static void
test_heartbeat (void)
{
  assert_heartbeat ("Heartbeat=", NULL, 0);
  assert_heartbeat ("Heartbeat=   ", NULL, 0);
  assert_heartbeat ("Heartbeat=PING?", "PING?", 5);
  /* GKeyFile's escapes, and a trailing blank that is part of the frame. */
  assert_heartbeat ("Heartbeat=\\sa\\tb\\r\\n\\\\ ", " a\tb\r\n\\ ", 8);
  assert_heartbeat ("Heartbeat=hex:00ff1A", "\x00\xff\x1a", 3);
  assert_heartbeat ("Heartbeat=hex: 00 01\t50 ", "\x00\x01\x50", 3);
}

/* ---- what a bad file is told ---- */

static void
test_error_groups (void)
{
  static const ErrorCase cases[] = {
    { "[Link a]\nHost=h\n[General]\nVerbose=true\n",
      "3: [General]: unknown group; each board is a [Link NAME] group" },
    { "[link a]\nHost=h\n", "1: [link a]: unknown group; each board is a [Link NAME] group" },
    { "[Link]\nHost=h\n", "1: [Link]: the link has no name; write [Link NAME]" },
    { "[Link ]\nHost=h\n", "1: [Link ]: the link has no name; write [Link NAME]" },
    { "# boards\n[Link my-board]\nHost=h\n",
      "2: [Link my-board]: link name “my-board” may only contain A-Z, a-z, 0-9 and “_”, as it "
      "becomes the D-Bus object path /org/stm32d/link/NAME" },
    { "[Link a b]\nHost=h\n",
      "1: [Link a b]: link name “a b” may only contain A-Z, a-z, 0-9 and “_”, as it "
      "becomes the D-Bus object path /org/stm32d/link/NAME" },
    { "[Link bench]\nHost=h\n\n[Link other]\nHost=o\n\n[Link bench]\nPort=1\n",
      "7: [Link bench]: link “bench” is defined twice; first on line 1" },
    { "[Link a]\nHost=h\n[Link a]\nPort=x\n",
      "3: [Link a]: link “a” is defined twice; first on line 1" },
    { "[Link a]\nPort=9000\n", "1: [Link a]: Host is missing; every link needs the board's host "
                               "name or address" },
  };

  assert_errors (cases, G_N_ELEMENTS (cases));
}

static void
test_error_keys (void)
{
  static const ErrorCase cases[] = {
    { "[Link a]\nHost=h\n\n  Prot = 80\n", "4: [Link a] Prot: unknown key" },
    { "[Link a]\nHost=h\nport=80\n",
      "3: [Link a] port: unknown key; did you mean “Port”? (keys are case-sensitive)" },
    { "[Link a]\nHost=h\nHost[de]=h\n",
      "3: [Link a] Host[de]: unknown key (keys take no “[locale]” suffix)" },
    { "[Link a]\nHost=h\n# more\nPort=1\nPort = 2\n",
      "5: [Link a] Port: set again; it was first set on line 4" },
    { "[Link a]\nHost=h\nHeartbeat=\\x\n",
      "3: [Link a] Heartbeat: “\\x” has an invalid escape sequence (known are \\s \\n \\t \\r "
      "\\\\)" },
  };

  assert_errors (cases, G_N_ELEMENTS (cases));
}

#define MS_RANGE(lo)                                                                               \
  "is not a number of milliseconds (" lo " to 4294967295; “s” after the number means seconds)"

static void
test_error_values (void)
{
  static const ErrorCase cases[] = {
    { "[Link a]\nHost=h\nRetryMin=-5\n", "3: [Link a] RetryMin: “-5” is not a number of "
                                         "milliseconds (1 to 3579139412; “s” after the number "
                                         "means seconds)" },
    { "[Link a]\nHost=h\nConnectTimeout=abc\n",
      "3: [Link a] ConnectTimeout: “abc” " MS_RANGE ("1") },
    { "[Link a]\nHost=h\nIdleTimeout=5x\n", "3: [Link a] IdleTimeout: “5x” " MS_RANGE ("0") },
    { "[Link a]\nHost=h\nIdleTimeout=5 min\n", "3: [Link a] IdleTimeout: “5 min” " MS_RANGE ("0") },
    { "[Link a]\nHost=h\nIdleTimeout=+5\n", "3: [Link a] IdleTimeout: “+5” " MS_RANGE ("0") },
    { "[Link a]\nHost=h\nIdleTimeout=0x10\n", "3: [Link a] IdleTimeout: “0x10” " MS_RANGE ("0") },
    { "[Link a]\nHost=h\nIdleTimeout=\n", "3: [Link a] IdleTimeout: “” " MS_RANGE ("0") },
    { "[Link a]\nHost=h\nIdleTimeout=s\n", "3: [Link a] IdleTimeout: “s” " MS_RANGE ("0") },
    { "[Link a]\nHost=h\nIdleTimeout=4294967296\n",
      "3: [Link a] IdleTimeout: “4294967296” " MS_RANGE ("0") },
    { "[Link a]\nHost=h\nIdleTimeout=4294968s\n",
      "3: [Link a] IdleTimeout: “4294968s” " MS_RANGE ("0") },
    { "[Link a]\nHost=h\nIdleTimeout=99999999999999999999999\n",
      "3: [Link a] IdleTimeout: “99999999999999999999999” " MS_RANGE ("0") },
    { "[Link a]\nHost=h\nConnectTimeout=0\n", "3: [Link a] ConnectTimeout: “0” " MS_RANGE ("1") },
    { "[Link a]\nHost=h\nPort=70000\n",
      "3: [Link a] Port: “70000” is not a port number (1 to 65535)" },
    { "[Link a]\nHost=h\nPort=0\n", "3: [Link a] Port: “0” is not a port number (1 to 65535)" },
    { "[Link a]\nHost=h\nPort=80 # web\n",
      "3: [Link a] Port: “80 # web” is not a port number (1 to 65535)" },
    { "[Link a]\nHost=h\nPort=80s\n", "3: [Link a] Port: “80s” is not a port number (1 to 65535)" },
    { "[Link a]\nHost=h\nKeepaliveCount=128\n",
      "3: [Link a] KeepaliveCount: “128” is not a count (1 to 127)" },
    { "[Link a]\nHost=h\nKeepaliveIdle=32768\n",
      "3: [Link a] KeepaliveIdle: “32768” is not a number of seconds (1 to 32767)" },
    { "[Link a]\nHost=h\nKeepaliveInterval=1000ms\n",
      "3: [Link a] KeepaliveInterval: “1000ms” is not a number of seconds (1 to 32767)" },
    { "[Link a]\nHost=h\nUserTimeout=2147483648\n",
      "3: [Link a] UserTimeout: “2147483648” is not a number of milliseconds (0 to 2147483647; "
      "“s” after the number means seconds)" },
    { "[Link a]\nHost=h\nMaxFrame=64KB\n",
      "3: [Link a] MaxFrame: “64KB” is not a number of bytes (1 to 4294967295; “KiB” or “MiB” "
      "may follow the number)" },
    { "[Link a]\nHost=h\nSendQueueMax=4096MiB\n",
      "3: [Link a] SendQueueMax: “4096MiB” is not a number of bytes (1 to 4294967295; “KiB” or "
      "“MiB” may follow the number)" },
    { "[Link a]\nHost=h\nAutoconnect=yes\n",
      "3: [Link a] Autoconnect: “yes” is not a boolean (true or false)" },
    { "[Link a]\nHost=h\nFraming=LINE\n",
      "3: [Link a] Framing: “LINE” is not one of: raw, line, u16be, u32be, json" },
    { "[Link a]\nHost=h\nCloseMode=fast\n",
      "3: [Link a] CloseMode: “fast” is not one of: auto, graceful, reset" },
    { "[Link a]\nHost=\n", "2: [Link a] Host: is empty; give the board's host name or IP address" },
    { "[Link a]\nHost=board:8080\n",
      "2: [Link a] Host: “board:8080” is not a host name or IP address (the port goes in Port, "
      "an IPv6 address has no brackets)" },
    { "[Link a]\nHost=[::1]\n",
      "2: [Link a] Host: “[::1]” is not a host name or IP address (the port goes in Port, an "
      "IPv6 address has no brackets)" },
    { "[Link a]\nHost=my board\n",
      "2: [Link a] Host: “my board” is not a host name or IP address (the port goes in Port, an "
      "IPv6 address has no brackets)" },
  };

  assert_errors (cases, G_N_ELEMENTS (cases));
}

/* Rules between keys come from stm32_link_config_validate(); the line is the
 * last of the keys it names. */
static void
test_error_cross_field (void)
{
  static const ErrorCase cases[] = {
    { "[Link a]\nHost=h\nRetryMin=500\nPort=1\nRetryMax=100\nFraming=raw\n",
      "5: [Link a] RetryMax: RetryMin (500 ms) must be at least 1 and not above RetryMax "
      "(100 ms)" },
    { "[Link a]\nHost=h\nRetryMax=100\nRetryMin=500\n",
      "4: [Link a] RetryMin: RetryMin (500 ms) must be at least 1 and not above RetryMax "
      "(100 ms)" },
    { "[Link a]\nHost=h\nRetryMin=40s\n", "3: [Link a] RetryMin: RetryMin (40000 ms) must be at "
                                          "least 1 and not above RetryMax (30000 ms)" },
    { "[Link a]\nHost=h\nMaxFrame=2MiB\n",
      "3: [Link a] MaxFrame: SendQueueMax (1048576) must hold at least one MaxFrame (2097152)" },
    { "[Link a]\nHost=ha\nSendQueueMax=100\nMaxFrame=100\n\n[Link b]\nHost=hb\nSendQueueMax=10\n",
      "8: [Link b] SendQueueMax: SendQueueMax (10) must hold at least one MaxFrame (65536)" },
  };

  assert_errors (cases, G_N_ELEMENTS (cases));
}

static void
test_error_heartbeat (void)
{
  static const ErrorCase cases[] = {
    { "[Link a]\nHost=h\nHeartbeat=a\\nb\n", "3: [Link a] Heartbeat: Heartbeat cannot be sent as a "
                                             "line frame: line frame contains a newline at "
                                             "byte 1" },
    { "[Link a]\nHost=h\nFraming=u16be\nMaxFrame=2\nHeartbeat=hex:010203\n",
      "5: [Link a] Heartbeat: Heartbeat cannot be sent as a u16be frame: frame of 3 bytes exceeds "
      "MaxFrame "
      "(2)" },
    { "[Link a]\nHost=h\nHeartbeat=hex:0\n",
      "3: [Link a] Heartbeat: “hex:0” is not hex bytes: write two hex digits per byte, e.g. "
      "hex:01 0a ff" },
    { "[Link a]\nHost=h\nHeartbeat=hex:0g\n",
      "3: [Link a] Heartbeat: “hex:0g” is not hex bytes: write two hex digits per byte, e.g. "
      "hex:01 0a ff" },
    { "[Link a]\nHost=h\nHeartbeat=hex:0 1\n",
      "3: [Link a] Heartbeat: “hex:0 1” is not hex bytes: write two hex digits per byte, e.g. "
      "hex:01 0a ff" },
    { "[Link a]\nHost=h\nHeartbeat=hex: \n",
      "3: [Link a] Heartbeat: “hex:” holds no bytes; leave Heartbeat empty to turn it off" },
  };

  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) links = NULL;

  assert_errors (cases, G_N_ELEMENTS (cases));

  /* The rest of the message is json-glib's and changes between versions. */
  links = stm32_config_load_data ("[Link a]\nHost=h\nHeartbeat=ping\nFraming=json\n", -1, FILE_NAME,
                                  &error);
  g_assert_null (links);
  g_assert_error (error, STM32_ERROR, STM32_ERROR_INVALID_ARGS);
  g_assert_true (g_str_has_prefix (
      error->message, FILE_NAME ":3: [Link a] Heartbeat: Heartbeat cannot be sent as a json frame: "
                                "json frame is not valid JSON: "));
}

/* @first: "NAME] on line N" */
#define SAME_BOARD(first, endpoint)                                                                \
  "reaches the same board as [Link " first " (" endpoint                                           \
  "): one link per board, as each connection takes one of the board's few slots"

/* Two links to one board: the same host (however its case or an address is
 * written) and the same port. */
static void
test_error_same_endpoint (void)
{
  static const ErrorCase cases[] = {
    { "[Link a]\nHost=board\n\n[Link b]\nHost=board\n",
      "4: [Link b]: " SAME_BOARD ("a] on line 1", "board port 8080") },
  };
  static const struct
  {
    const char *a, *b;
    guint16 port_a, port_b;
    gboolean same;
  } pairs[] = {
    { "board", "board", 80, 80, TRUE },          { "Board.Lab", "board.lab.", 80, 80, TRUE },
    { "127.0.0.1", "127.0.0.1", 80, 80, TRUE },  { "::1", "0:0:0:0::1", 80, 80, TRUE },
    { "FE80::A", "fe80::a", 80, 80, TRUE },      { "board", "board", 80, 81, FALSE },
    { "127.0.0.2", "127.0.0.3", 80, 80, FALSE }, { "board", "board.lab", 80, 80, FALSE },
  };

  for (guint i = 0; i < G_N_ELEMENTS (pairs); i++)
    {
      g_autoptr (Stm32LinkConfig) a = stm32_link_config_new (pairs[i].a, pairs[i].port_a);
      g_autoptr (Stm32LinkConfig) b = stm32_link_config_new (pairs[i].b, pairs[i].port_b);
      g_autofree char *text =
          g_strdup_printf ("[Link a]\nHost=%s\nPort=%u\n"
                           "[Link b]\nHost=%s\nPort=%u\n",
                           pairs[i].a, pairs[i].port_a, pairs[i].b, pairs[i].port_b);
      g_autoptr (GError) error = NULL;
      g_autoptr (GPtrArray) links = stm32_config_load_data (text, -1, FILE_NAME, &error);

      g_test_message ("%s:%u and %s:%u", pairs[i].a, pairs[i].port_a, pairs[i].b, pairs[i].port_b);
      g_assert_cmpint (stm32_link_config_same_endpoint (a, b), ==, pairs[i].same);
      g_assert_cmpint (stm32_link_config_same_endpoint (b, a), ==, pairs[i].same);
      g_assert_cmpint (links == NULL, ==, pairs[i].same);
      if (pairs[i].same)
        {
          g_assert_error (error, STM32_ERROR, STM32_ERROR_INVALID_ARGS);
          g_assert_true (g_str_has_prefix (error->message, FILE_NAME ":4: [Link b]: reaches the "
                                                                     "same board as [Link a] on "
                                                                     "line 1 ("));
        }
    }
  assert_errors (cases, G_N_ELEMENTS (cases));
  /* The first link that reaches it is named, whatever is in between; an
   * address is shown in its usual form. */
  assert_error ("[Link a]\nHost=10.0.0.1\n[Link b]\nHost=10.0.0.2\n"
                "[Link c]\nHost=::ffff:10.0.0.3\n[Link d]\nHost=0::FFFF:10.0.0.3\nPort=8080\n",
                -1, "7: [Link d]: " SAME_BOARD ("c] on line 5", "::ffff:10.0.0.3 port 8080"));
}

/* A host is an IP address or a DNS name, checked when the file is read:
 * a typo is an error with its line, not a connect that fails for ever. */
static void
test_error_host (void)
{
  static const ErrorCase cases[] = {
    { "[Link a]\nHost=-bad..host_name!\n",
      "2: [Link a] Host: “-bad..host_name!” is not an IP address or a valid host name: its label "
      "“-bad” starts or ends with “-”" },
    { "[Link a]\nHost=bad..host\n", "2: [Link a] Host: “bad..host” is not an IP address or a "
                                    "valid host name: it has an empty label (two dots in a row, "
                                    "or a dot first)" },
    { "[Link a]\nHost=.board\n", "2: [Link a] Host: “.board” is not an IP address or a valid "
                                 "host name: it has an empty label (two dots in a row, or a dot "
                                 "first)" },
    { "[Link a]\nHost=board_1\n", "2: [Link a] Host: “board_1” is not an IP address or a valid "
                                  "host name: “_” is not allowed in it (letters, digits and “-” "
                                  "only)" },
    { "[Link a]\nHost=böard\n", "2: [Link a] Host: “böard” is not an IP address or a valid host "
                                "name: “ö” is not allowed in it (letters, digits and “-” only)" },
    { "[Link a]\nHost=lab.board-\n", "2: [Link a] Host: “lab.board-” is not an IP address or a "
                                     "valid host name: its label “board-” starts or ends with "
                                     "“-”" },
    { "[Link a]\nHost=board!\n", "2: [Link a] Host: “board!” is not an IP address or a valid "
                                 "host name: “!” is not allowed in it (letters, digits and “-” "
                                 "only)" },
  };
  g_autofree char *label63 = g_strnfill (63, 'a');
  g_autofree char *label64 = g_strnfill (64, 'a');
  /* 4 × 63 + 3 dots = 255; less 2 = 253 */
  g_autofree char *name253 = g_strdup_printf ("%s.%s.%s.%.61s", label63, label63, label63, label63);
  g_autofree char *name254 = g_strdup_printf ("%s.%s.%s.%.62s", label63, label63, label63, label63);
  const char *good[] = { "board",     "board.",       "Lab-3.example.org",
                         "1e100.net", "192.168.1.50", "fe80::1%eth0",
                         "::1",       label63,        name253 };
  g_autofree char *text = NULL, *message = NULL;

  assert_errors (cases, G_N_ELEMENTS (cases));
  for (guint i = 0; i < G_N_ELEMENTS (good); i++)
    {
      g_autofree char *good_text = g_strdup_printf ("[Link a]\nHost=%s\n", good[i]);
      g_autoptr (GPtrArray) links = load_ok (good_text, 1);

      g_assert_cmpstr (link_config (links, 0)->host, ==, good[i]);
    }

  text = g_strdup_printf ("[Link a]\nHost=x.%s\n", label64);
  message = g_strdup_printf ("2: [Link a] Host: “x.%s” is not an IP address or a valid host name: "
                             "its label “%s” is 64 characters long (at most 63)",
                             label64, label64);
  assert_error (text, -1, message);
  g_free (text);
  g_free (message);
  text = g_strdup_printf ("[Link a]\nHost=%s\n", name254);
  message = g_strdup_printf ("2: [Link a] Host: “%s” is not an IP address or a valid host name: "
                             "it is 254 characters long (at most 253)",
                             name254);
  assert_error (text, -1, message);
}

/* GKeyFile's own complaints, placed on their line. */
static void
test_error_syntax (void)
{
  static const char nul_text[] = "[Link a]\nHost=h\n\nPort=1\0\n";
  static const ErrorCase cases[] = {
    { "[Link a]\nHost=h\nPort 80\n", "3: Key file contains line “Port 80” which is not a "
                                     "key-value pair, group, or comment" },
    { "# comment\n\nHost=h\n[Link a]\n", "3: Key file does not start with a group" },
    { "[Link a]\nHost=h\n; old style comment\n",
      "3: Key file contains line “; old style comment” which is not a key-value pair, group, or "
      "comment" },
    { "[Link a]\nHost=h\n[Link b\n",
      "3: Key file contains line “[Link b” which is not a key-value pair, group, or comment" },
    { "[Link a]\nHost=h\nPort=1\n\n\nHost [de]=x\n", "6: Invalid key name: Host [de]" },
    { "[Link a]\nHost=\xff\n", "2: is not valid UTF-8 text" },
  };

  assert_errors (cases, G_N_ELEMENTS (cases));
  assert_error (nul_text, sizeof nul_text - 1, "4: contains a NUL byte");
}

/* Everything after the first failure is freed too (ASan checks). */
static void
test_error_after_links (void)
{
  assert_error ("[Link a]\nHost=ha\nHeartbeat=hex:01\n[Link b]\nHost=hb\nHeartbeat=x\n"
                "[Link c]\nHost=hc\nPort=x\n",
                -1, "9: [Link c] Port: “x” is not a port number (1 to 65535)");
}

/* Editors that start UTF-8 with a byte order mark: it is skipped, and lines
 * keep their numbers. */
static void
test_bom (void)
{
  g_autoptr (GPtrArray) links = load_ok ("\xef\xbb\xbf[Link a]\nHost=board\n", 1);

  g_assert_cmpstr (((Stm32ConfigLink *) links->pdata[0])->name, ==, "a");
  g_assert_cmpstr (link_config (links, 0)->host, ==, "board");
  assert_error ("\xef\xbb\xbf# lab\n[Link a]\nHost=board\nPort=x\n", -1,
                "4: [Link a] Port: “x” is not a port number (1 to 65535)");
}

/* ---- large files ---- */

typedef void (*AppendLine) (GString *text, guint index);

static void
append_key (GString *text, guint index)
{
  g_string_append_printf (text, "Key_%06u=value\n", index);
}

static void
append_link (GString *text, guint index)
{
  g_string_append_printf (text, "[Link l%06u]\nHost=10.%u.%u.%u\n", index, index / 65536,
                          index / 256 % 256, index % 256);
}

static void
append_comment (GString *text, guint index)
{
  g_string_append (text, "# a comment\n");
}

/* Text of @size bytes: @head, then as many lines from @append as fit (their
 * number in @n_lines), then @tail, then a "#" comment as padding. */
static char *
large_text (gsize size, const char *head, AppendLine append, const char *tail, guint *n_lines)
{
  GString *text = g_string_new (head);
  gsize reserve = strlen (tail) + 2;

  for (*n_lines = 0;; ++*n_lines)
    {
      gsize before = text->len;

      append (text, *n_lines);
      if (text->len + reserve > size)
        {
          g_string_truncate (text, before);
          break;
        }
    }
  g_string_append (text, tail);
  g_string_append_c (text, '#');
  while (text->len < size - 1)
    g_string_append_c (text, '#');
  g_string_append_c (text, '\n');
  g_assert_cmpuint (text->len, ==, size);
  return g_string_free (text, FALSE);
}

/* Just under the size limit, as many keys as fit in one group: checking
 * them costs time in proportion to the file (quadratic, this took minutes). */
static void
test_large_many_keys (void)
{
  g_autofree char *unknown = NULL, *repeated = NULL, *expected = NULL, *tail = NULL;
  guint n;

  unknown = large_text (STM32_CONFIG_FILE_MAX - 1, "[Link a]\nHost=h\n", append_key, "", &n);
  g_assert_cmpuint (n, >, 60000);
  assert_error (unknown, -1, "3: [Link a] Key_000000: unknown key");

  /* Every key is seen: the last line sets the first key again. */
  tail = g_strdup ("Key_000000=again\n");
  repeated = large_text (STM32_CONFIG_FILE_MAX - 1, "[Link a]\nHost=h\n", append_key, tail, &n);
  expected =
      g_strdup_printf ("%u: [Link a] Key_000000: set again; it was first set on line 3", n + 3);
  assert_error (repeated, -1, expected);
}

/* Just under the size limit, as many links as fit, each to its own board. */
static void
test_large_many_links (void)
{
  g_autofree char *text = NULL, *twice = NULL, *same = NULL, *expected = NULL, *last = NULL;
  g_autoptr (GPtrArray) links = NULL;
  guint n;

  text = large_text (STM32_CONFIG_FILE_MAX - 1, "", append_link, "", &n);
  g_assert_cmpuint (n, >, 30000);
  links = load_ok (text, n);
  last = g_strdup_printf ("l%06u", n - 1);
  g_assert_cmpstr (((Stm32ConfigLink *) links->pdata[n - 1])->name, ==, last);
  g_assert_cmpstr (link_config (links, 0)->host, ==, "10.0.0.0");

  /* The first link again at the end; then the first board again. */
  twice = large_text (STM32_CONFIG_FILE_MAX - 1, "", append_link, "[Link l000000]\nHost=h\n", &n);
  expected = g_strdup_printf ("%u: [Link l000000]: link “l000000” is defined twice; first on "
                              "line 1",
                              2 * n + 1);
  assert_error (twice, -1, expected);
  g_free (expected);
  same =
      large_text (STM32_CONFIG_FILE_MAX - 1, "", append_link, "[Link last]\nHost=10.0.0.0\n", &n);
  expected = g_strdup_printf ("%u: [Link last]: reaches the same board as [Link l000000] on line 1 "
                              "(10.0.0.0 port 8080): one link per board, as each connection takes "
                              "one of the board's few slots",
                              2 * n + 1);
  assert_error (same, -1, expected);
}

/* ---- files ---- */

static void
assert_too_large (const char *path)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) links = stm32_config_load_file (path, &error);
  g_autofree char *expected =
      g_strdup_printf ("%s: is larger than %u bytes (%u KiB), the most stm32d reads as a config "
                       "file; is it the right file?",
                       path, (guint) STM32_CONFIG_FILE_MAX, (guint) STM32_CONFIG_FILE_MAX / 1024);

  g_assert_null (links);
  g_assert_error (error, STM32_ERROR, STM32_ERROR_INVALID_ARGS);
  g_assert_cmpstr (error->message, ==, expected);
}

/* A regular file is read up to the limit and no further: a file at the
 * limit loads, one byte more is refused. */
static void
test_file_limit (void)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *dir = g_dir_make_tmp ("stm32-config-XXXXXX", &error);
  g_autofree char *path = g_build_filename (dir, "stm32d.conf", NULL);
  g_autofree char *text = NULL, *larger = NULL;
  g_autoptr (GPtrArray) links = NULL;
  guint n;

  g_assert_no_error (error);
  text = large_text (STM32_CONFIG_FILE_MAX, "[Link a]\nHost=h\n", append_comment, "", &n);
  g_assert_true (g_file_set_contents (path, text, -1, &error));
  g_assert_no_error (error);
  links = stm32_config_load_file (path, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (links->len, ==, 1);

  larger = g_strconcat (text, "#", NULL);
  g_assert_true (g_file_set_contents (path, larger, -1, &error));
  assert_too_large (path);

  g_assert_cmpint (g_unlink (path), ==, 0);
  g_assert_cmpint (g_rmdir (dir), ==, 0);
}

typedef struct
{
  const char *path;
  GMutex lock;
  GCond cond;
  gboolean done;
  GPtrArray *links;
  GError *error;
} BlockingLoad;

static gpointer
blocking_load_thread (gpointer data)
{
  BlockingLoad *load = data;
  GError *error = NULL;
  GPtrArray *links = stm32_config_load_file (load->path, &error);

  g_mutex_lock (&load->lock);
  load->links = links;
  load->error = error;
  load->done = TRUE;
  g_cond_signal (&load->cond);
  g_mutex_unlock (&load->lock);
  return NULL;
}

/* stm32_config_load_file() in a thread: one that blocks (a FIFO without a
 * writer, before) fails the test after a bounded wait instead of hanging it. */
static GPtrArray *
load_file_bounded (const char *path, GError **error)
{
  BlockingLoad load = { .path = path };
  gint64 deadline = g_get_monotonic_time () + 10 * G_TIME_SPAN_SECOND;
  GThread *thread;

  g_mutex_init (&load.lock);
  g_cond_init (&load.cond);
  thread = g_thread_new ("config-load", blocking_load_thread, &load);
  g_mutex_lock (&load.lock);
  while (!load.done)
    if (!g_cond_wait_until (&load.cond, &load.lock, deadline))
      g_error ("loading %s did not return within 10 s: it blocks", path);
  g_mutex_unlock (&load.lock);
  g_thread_join (thread);
  g_mutex_clear (&load.lock);
  g_cond_clear (&load.cond);
  if (load.error != NULL)
    g_propagate_error (error, load.error);
  return load.links;
}

static void
assert_not_regular (const char *path, const char *what)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) links = load_file_bounded (path, &error);
  g_autofree char *expected =
      g_strdup_printf ("%s: is %s; stm32d reads its config only from a regular file", path, what);

  g_assert_null (links);
  g_assert_error (error, STM32_ERROR, STM32_ERROR_INVALID_ARGS);
  g_assert_cmpstr (error->message, ==, expected);
}

/* Only a regular file is read, and nothing blocks: a FIFO without a writer
 * is refused at once (opening it used to wait for a writer, forever), so is
 * one that holds a valid config (a Reload would find it empty), a device and
 * a directory; a symbolic link to a regular file is that file. */
static void
test_file_not_regular (void)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *dir = g_dir_make_tmp ("stm32-config-XXXXXX", &error);
  g_autofree char *fifo = g_build_filename (dir, "fifo.conf", NULL);
  g_autofree char *path = g_build_filename (dir, "stm32d.conf", NULL);
  g_autofree char *symlink_path = g_build_filename (dir, "link.conf", NULL);
  const char *text = "[Link a]\nHost=h\n";
  g_autoptr (GPtrArray) links = NULL;
  int fd;

  g_assert_no_error (error);
  g_assert_cmpint (mkfifo (fifo, 0600), ==, 0);
  assert_not_regular (fifo, "a FIFO (named pipe)");

  /* Opened read-write, a FIFO has a writer and its data waits in it. */
  fd = g_open (fifo, O_RDWR | O_NONBLOCK, 0);
  g_assert_cmpint (fd, >=, 0);
  g_assert_cmpint (write (fd, text, strlen (text)), ==, (gssize) strlen (text));
  assert_not_regular (fifo, "a FIFO (named pipe)");
  g_assert_true (g_close (fd, NULL));

  assert_not_regular ("/dev/zero", "a character device");
  assert_not_regular (dir, "a directory");

  g_assert_true (g_file_set_contents (path, text, -1, &error));
  g_assert_no_error (error);
  g_assert_cmpint (symlink (path, symlink_path), ==, 0);
  links = load_file_bounded (symlink_path, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (links->len, ==, 1);

  g_assert_cmpint (g_unlink (symlink_path), ==, 0);
  g_assert_cmpint (g_unlink (path), ==, 0);
  g_assert_cmpint (g_unlink (fifo), ==, 0);
  g_assert_cmpint (g_rmdir (dir), ==, 0);
}

static void
test_file (void)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *dir = g_dir_make_tmp ("stm32-config-XXXXXX", &error);
  g_autofree char *path = g_build_filename (dir, "stm32d.conf", NULL);
  g_autofree char *missing = g_build_filename (dir, "missing.conf", NULL);
  g_autofree char *expected = NULL;
  g_autoptr (GPtrArray) links = NULL;

  g_assert_no_error (error);
  g_assert_true (
      g_file_set_contents (path, "[Link a]\nHost=ha\n[Link b]\nHost=hb\nPort=x\n", -1, &error));
  g_assert_no_error (error);

  links = stm32_config_load_file (path, &error);
  g_assert_null (links);
  expected = g_strdup_printf ("%s:5: [Link b] Port: “x” is not a port number (1 to 65535)", path);
  g_assert_error (error, STM32_ERROR, STM32_ERROR_INVALID_ARGS);
  g_assert_cmpstr (error->message, ==, expected);
  g_clear_error (&error);

  /* A missing file keeps its GFileError, so the daemon can tell it apart. */
  links = stm32_config_load_file (missing, &error);
  g_assert_null (links);
  g_assert_error (error, G_FILE_ERROR, G_FILE_ERROR_NOENT);
  g_assert_nonnull (strstr (error->message, missing));

  g_assert_cmpint (g_unlink (path), ==, 0);
  g_assert_cmpint (g_rmdir (dir), ==, 0);
}

/* The shipped example must parse, document every key, and state the real
 * defaults: its first link lists every key commented out at its default. */
static void
test_example (void)
{
  g_autofree char *path =
      g_test_build_filename (G_TEST_DIST, "..", "systemd", "stm32d.conf.example", NULL);
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) links = stm32_config_load_file (path, &error);
  g_autoptr (GPtrArray) uncommented_links = NULL;
  g_autoptr (GRegex) commented = g_regex_new ("^#([A-Za-z]+=)", G_REGEX_MULTILINE, 0, NULL);
  g_autofree char *text = NULL;
  g_autofree char *uncommented = NULL;
  g_auto (GStrv) lines = g_strsplit (every_key, "\n", -1);
  Stm32LinkConfig *motor;

  g_assert_no_error (error);
  g_assert_cmpuint (links->len, ==, 2);
  g_assert_cmpstr (((Stm32ConfigLink *) links->pdata[0])->name, ==, "bench");
  g_assert_cmpstr (((Stm32ConfigLink *) links->pdata[1])->name, ==, "motor_ctrl");
  assert_defaults (link_config (links, 0));
  motor = link_config (links, 1);
  g_assert_cmpint (motor->framing, ==, STM32_FRAMING_U16BE);
  g_assert_nonnull (motor->heartbeat);
  g_assert_cmpuint (motor->heartbeat_timeout, ==, 500);

  g_assert_true (g_file_get_contents (path, &text, NULL, &error));
  for (guint i = 1; lines[i] != NULL && lines[i][0] != '\0'; i++)
    {
      g_autofree char *key = g_strndup (lines[i], strcspn (lines[i], "="));
      g_autofree char *documented = g_strdup_printf ("\n#%s=", key);
      g_autofree char *set = g_strdup_printf ("\n%s=", key);

      g_test_message ("key %s", key);
      g_assert_true (strstr (text, documented) != NULL || strstr (text, set) != NULL);
    }

  uncommented = g_regex_replace (commented, text, -1, 0, "\\1", 0, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (uncommented, !=, text);
  uncommented_links = load_ok (uncommented, 2);
  assert_defaults (link_config (uncommented_links, 0));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/config/defaults", test_defaults);
  g_test_add_func ("/config/every-key", test_every_key);
  g_test_add_func ("/config/order", test_order);
  g_test_add_func ("/config/no-links", test_no_links);
  g_test_add_func ("/config/layout", test_layout);
  g_test_add_func ("/config/booleans", test_booleans);
  g_test_add_func ("/config/units", test_units);
  g_test_add_func ("/config/limits", test_limits);
  g_test_add_func ("/config/heartbeat", test_heartbeat);
  g_test_add_func ("/config/error/groups", test_error_groups);
  g_test_add_func ("/config/error/keys", test_error_keys);
  g_test_add_func ("/config/error/values", test_error_values);
  g_test_add_func ("/config/error/cross-field", test_error_cross_field);
  g_test_add_func ("/config/error/heartbeat", test_error_heartbeat);
  g_test_add_func ("/config/error/same-endpoint", test_error_same_endpoint);
  g_test_add_func ("/config/error/host", test_error_host);
  g_test_add_func ("/config/error/syntax", test_error_syntax);
  g_test_add_func ("/config/error/after-links", test_error_after_links);
  g_test_add_func ("/config/bom", test_bom);
  g_test_add_func ("/config/large/many-keys", test_large_many_keys);
  g_test_add_func ("/config/large/many-links", test_large_many_links);
  g_test_add_func ("/config/file", test_file);
  g_test_add_func ("/config/file-limit", test_file_limit);
  g_test_add_func ("/config/file-not-regular", test_file_not_regular);
  g_test_add_func ("/config/example", test_example);

  return g_test_run ();
}
