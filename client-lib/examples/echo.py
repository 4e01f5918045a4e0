#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Sends one message to a board through stm32d and prints the board's reply.

    echo.py [--system] LINK MESSAGE

Written the way a GUI would do it: nothing blocks, every answer from the
daemon arrives in a callback on the GLib main loop (the one GTK runs, or that
a Qt application can run alongside), so the window stays responsive.
"""
import argparse
import sys

import gi

gi.require_version("Stm32Client", "0.1")
from gi.repository import Gio, GLib, GObject, Stm32Client  # noqa: E402


class Echo:
    def __init__(self, link_name, message):
        self.link_name = link_name
        self.message = message
        self.loop = GLib.MainLoop()
        self.client = None  # keep the client: it follows the daemon's links
        self.exit_status = 1

    def run(self, bus_type):
        Stm32Client.Client.new(bus_type, None, self.on_client_ready)
        self.loop.run()
        return self.exit_status

    def fail(self, error):
        # Daemon errors are GLib.Error in domain Stm32Client.Error (the code
        # says which: NOT_CONNECTED, TIMEOUT, ...); the message is for people.
        print(f"echo.py: {error.message}", file=sys.stderr)
        self.loop.quit()

    def on_client_ready(self, _source, result):
        try:
            self.client = Stm32Client.Client.new_finish(result)
            # Fails with a message naming the links there are, or saying
            # that stm32d is not running.
            link = self.client.find_link(self.link_name)
        except GLib.Error as error:
            return self.fail(error)
        print(f"link {link.props.name}: {link.props.state} "
              f"({link.props.host}:{link.props.port}, {link.props.framing} framing)")
        # ClientLink.connect() is the link's Connect method and hides
        # GObject's connect(): connect to signals through GObject.Object.
        GObject.Object.connect(link, "notify::state", self.on_state_changed)
        if link.props.state == "connected":
            self.transact(link)
        else:
            link.connect(None, self.on_connected)

    def on_state_changed(self, link, _pspec):
        # Properties follow the daemon: a status line would update here.
        print(f"link {link.props.name}: {link.props.state}")

    def on_connected(self, link, result):
        try:
            link.connect_finish(result)
        except GLib.Error as error:
            return self.fail(error)
        self.transact(link)

    def transact(self, link):
        # The reply is the next frame the board sends; give up after 2 s.
        request = GLib.Bytes.new(self.message.encode())
        link.transact(request, 2000, None, self.on_reply)

    def on_reply(self, link, result):
        try:
            reply = link.transact_finish(result)
        except GLib.Error as error:
            return self.fail(error)
        print("reply:", reply.get_data().decode(errors="replace"))
        self.exit_status = 0
        self.loop.quit()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--system", action="store_true",
                        help="stm32d on the system bus, as installed (default: the session bus)")
    parser.add_argument("link", help="the link's name, as in stm32d.conf")
    parser.add_argument("message", help="the frame to send (stm32d adds the framing)")
    args = parser.parse_args()
    bus_type = Gio.BusType.SYSTEM if args.system else Gio.BusType.SESSION
    return Echo(args.link, args.message).run(bus_type)


if __name__ == "__main__":
    sys.exit(main())
