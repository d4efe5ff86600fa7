"""``jepsenlike check``: placeholder until the checker lands."""


def register(sub):
    p = sub.add_parser("check", help="check a history file")
    p.set_defaults(func=lambda args: 255)
