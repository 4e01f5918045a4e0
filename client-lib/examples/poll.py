#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Asks a board the same question over and over, as a GUI polling a sensor does.

    poll.py [--system] [--count N] LINK QUESTION

The questions go over a transaction channel (Link1.OpenTransactChannel): one
socket round trip to stm32d each, instead of a D-Bus call each, so polling
fast costs the daemon and the bus little. Like echo.py nothing blocks: each
answer arrives in a callback on the GLib main loop, and the next question is
asked from there.
"""
import argparse
import statistics
import sys

import gi

gi.require_version("Stm32Client", "0.1")
from gi.repository import Gio, GLib, Stm32Client  # noqa: E402


class Poll:
    def __init__(self, link_name, question, count):
        self.link_name = link_name
        self.question = GLib.Bytes.new(question.encode())
        self.count = count
        self.asked_at = 0
        self.round_trips_us = []
        self.loop = GLib.MainLoop()
        self.client = None
        self.channel = None
        self.exit_status = 1

    def run(self, bus_type):
        Stm32Client.Client.new(bus_type, None, self.on_client_ready)
        self.loop.run()
        return self.exit_status

    def fail(self, error):
        print(f"poll.py: {error.message}", file=sys.stderr)
        self.loop.quit()

    def on_client_ready(self, _source, result):
        try:
            self.client = Stm32Client.Client.new_finish(result)
            link = self.client.find_link(self.link_name)
        except GLib.Error as error:
            return self.fail(error)
        link.open_transact_channel(None, self.on_channel_open)

    def on_channel_open(self, link, result):
        try:
            # The channel outlives reconnects of the link; keep it for the run.
            self.channel = link.open_transact_channel_finish(result)
        except GLib.Error as error:
            return self.fail(error)
        self.ask()

    def ask(self):
        self.asked_at = GLib.get_monotonic_time()
        self.channel.transact(self.question, 2000, None, self.on_answer)

    def on_answer(self, channel, result):
        try:
            answer = channel.transact_finish(result)
        except GLib.Error as error:
            return self.fail(error)
        self.round_trips_us.append(GLib.get_monotonic_time() - self.asked_at)
        number = len(self.round_trips_us)
        print(f"answer {number}: {answer.get_data().decode(errors='replace')}")
        if number < self.count:
            return self.ask()
        print(f"median round trip: {statistics.median(self.round_trips_us):.0f} us")
        self.channel.close()
        self.exit_status = 0
        self.loop.quit()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--system", action="store_true",
                        help="stm32d on the system bus, as installed (default: the session bus)")
    parser.add_argument("--count", type=int, default=10,
                        help="how many times to ask (default: 10)")
    parser.add_argument("link", help="the link's name, as in stm32d.conf")
    parser.add_argument("question", help="the frame to send (stm32d adds the framing)")
    args = parser.parse_args()
    if args.count < 1:
        parser.error("--count must be at least 1")
    bus_type = Gio.BusType.SYSTEM if args.system else Gio.BusType.SESSION
    return Poll(args.link, args.question, args.count).run(bus_type)


if __name__ == "__main__":
    sys.exit(main())
