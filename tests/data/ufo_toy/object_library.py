# Deliberately Python 2 (as in SMEFTsim 3.0): sbihep must never read this file.
class UFOError(Exception):
    pass

def fail():
    raise UFOError, "this file is never executed"
