"""The launcher: an ordinary program that boots a guest through the lguest node.

It reaches the daemon only through the node, with ``os.open``, ``os.read`` and ``os.write``, as
the 2.6.24 launcher reached ``/dev/lguest``; of ``lguestfs`` it imports only ``lguestfs.abi``.
"""
