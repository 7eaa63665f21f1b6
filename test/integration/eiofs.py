"""A FUSE file system for I/O-error tests: it mirrors a backing directory
and, while the file named by --fault holds "eio", answers every write,
fsync, create, mkdir and rename with EIO (reads and listings go on), as a
failing disk does. Needs fusepy (Debian python3-fusepy) and root.

    python3 eiofs.py BACKING MOUNTPOINT --fault FILE

Runs in the foreground until unmounted (umount MOUNTPOINT)."""
import argparse
import errno
import os

from fusepy import FUSE, FuseOSError, Operations


class Mirror(Operations):
    def __init__(self, root, fault):
        self.root = os.path.realpath(root)
        self.fault = fault

    def _p(self, path):
        return os.path.join(self.root, path.lstrip("/"))

    def _failing(self):
        try:
            with open(self.fault) as f:
                if f.read().strip() == "eio":
                    raise FuseOSError(errno.EIO)
        except FileNotFoundError:
            pass

    # reads and metadata
    def getattr(self, path, fh=None):
        st = os.lstat(self._p(path))
        return {k: getattr(st, k) for k in ("st_mode", "st_nlink", "st_uid", "st_gid",
                                              "st_size", "st_atime", "st_mtime", "st_ctime")}

    def readdir(self, path, fh):
        return [".", ".."] + os.listdir(self._p(path))

    def access(self, path, mode):
        if not os.access(self._p(path), mode):
            raise FuseOSError(errno.EACCES)

    def statfs(self, path):
        st = os.statvfs(self._p(path))
        return {k: getattr(st, k) for k in ("f_bavail", "f_bfree", "f_blocks", "f_bsize",
                                              "f_favail", "f_ffree", "f_files", "f_flag",
                                              "f_frsize", "f_namemax")}

    def open(self, path, flags):
        if flags & (os.O_WRONLY | os.O_RDWR):
            self._failing()
        return os.open(self._p(path), flags)

    def read(self, path, size, offset, fh):
        return os.pread(fh, size, offset)

    def release(self, path, fh):
        os.close(fh)

    def flush(self, path, fh):
        return 0

    # what fails while the fault is on
    def create(self, path, mode, fi=None):
        self._failing()
        return os.open(self._p(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)

    def write(self, path, data, offset, fh):
        self._failing()
        return os.pwrite(fh, data, offset)

    def truncate(self, path, length, fh=None):
        self._failing()
        os.truncate(self._p(path), length)

    def fsync(self, path, datasync, fh):
        self._failing()
        os.fsync(fh)

    def fsyncdir(self, path, datasync, fh):
        self._failing()
        return 0

    def mkdir(self, path, mode):
        self._failing()
        os.mkdir(self._p(path), mode)

    def rename(self, old, new):
        self._failing()
        os.rename(self._p(old), self._p(new))

    # removals and attributes pass (retention, cleanup)
    def unlink(self, path):
        os.unlink(self._p(path))

    def rmdir(self, path):
        os.rmdir(self._p(path))

    def chmod(self, path, mode):
        os.chmod(self._p(path), mode)

    def chown(self, path, uid, gid):
        os.chown(self._p(path), uid, gid)

    def utimens(self, path, times=None):
        os.utime(self._p(path), times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("backing")
    ap.add_argument("mountpoint")
    ap.add_argument("--fault", required=True)
    a = ap.parse_args()
    FUSE(Mirror(a.backing, a.fault), a.mountpoint, foreground=True, nothreads=True)


if __name__ == "__main__":
    main()
