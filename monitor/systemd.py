"""systemd notifications (READY, STATUS, WATCHDOG, STOPPING) in UTF-8.

sdnotify connects to $NOTIFY_SOCKET well, but encodes each message as Latin-1 and swallows
the error, so a Chinese STATUS= line never arrived. The protocol is UTF-8 (sd_notify(3));
this sends it so, and logs once if a message cannot be sent at all.
"""

from __future__ import annotations

import logging

import sdnotify

log = logging.getLogger(__name__)


class Notifier(sdnotify.SystemdNotifier):
    def __init__(self):
        super().__init__()
        self._warned = False

    def notify(self, state: str) -> None:
        if self.socket is None:  # not under systemd: nothing to tell
            return
        try:
            self.socket.sendall(state.encode("utf-8"))
        except OSError as e:
            if not self._warned:
                self._warned = True
                log.warning("无法向 systemd 发送状态通知：%s", e)
