"""The launcher's one failure type: whatever goes wrong becomes one clear line and an exit status.

Every check in the launcher (bad command line, a kernel that is not an i386 ELF, a guest that builds
a malformed ring) raises ``LaunchError`` with a message that reads well after ``lguest-launch: ``;
``launcher.main`` prints it and exits non-zero, so the user never sees a traceback.
"""


class LaunchError(Exception):
    """Bad input or a fatal guest mistake; ``str(error)`` is one line a person can act on."""


class GuestBroke(LaunchError):
    """The guest broke a rule of its devices (spec 8 "Queue walking"): the launcher must stop.

    2.6.24's launcher ``errx()``-ed on these; so do we, naming the device and the rule broken.
    """
