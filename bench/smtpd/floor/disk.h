/* The disk work a queued and delivered message needs, and nothing else (bench/smtpd/floor.sh),
   shared by floor/disk.c (a program per part) and floor/smtpd.c (the same work in-process):
   floor_queue — what qmail-queue must do before qmail-smtpd may answer 250: create pid/PID
              exclusively, write a 1 KB message, fsync it, link it to mess/ID and fsync mess/,
              create intd/ID with an envelope, fsync it, link it to todo/ID and fsync todo/;
   floor_maildir — one Maildir delivery: create tmp/PID.ID, write the 1 KB message, fsync it,
              link it to new/PID.ID, unlink the tmp name and fsync new/; then remove the
              message's queue files (mess/ID, intd/ID, todo/ID), as qmail-clean would.
   Both work in the current directory ($FLOOR_DIR). ID is $FLOOR_ID, which floor/smtpd.c sets
   per message. No parsing, no Received line, no queue layout split, no scheduler. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char msg[1024];

static void die(const char *what) {
  perror(what);
  _exit(111);
}

static void put_file(const char *path, const char *data, size_t len) {
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
  if (fd < 0) die(path);
  if (write(fd, data, len) != (ssize_t)len || fsync(fd) < 0 || close(fd) < 0) die(path);
}

/* With FLOOR_NO_DIRSYNC set, directories are not fsynced (as Postfix does not). */
static void sync_dir(const char *path) {
  if (getenv("FLOOR_NO_DIRSYNC")) return;
  int fd = open(path, O_RDONLY | O_DIRECTORY);
  if (fd < 0 || fsync(fd) < 0 || close(fd) < 0) die(path);
}

static void floor_queue(const char *id) {
  char a[256], b[256];
  memset(msg, 'x', sizeof msg);
  snprintf(a, sizeof a, "pid/%d", (int)getpid());
  put_file(a, msg, sizeof msg);
  snprintf(b, sizeof b, "mess/%s", id);
  if (link(a, b) < 0) die(b);
  sync_dir("mess");
  unlink(a);
  snprintf(a, sizeof a, "intd/%s", id);
  put_file(a, "u0\0p0\0Fa@client.example\0Tbench@bench.example\0", 46);
  snprintf(b, sizeof b, "todo/%s", id);
  if (link(a, b) < 0) die(b);
  sync_dir("todo");
}

static void floor_maildir(const char *id) {
  char a[256], b[256];
  memset(msg, 'x', sizeof msg);
  snprintf(a, sizeof a, "tmp/%d.%s", (int)getpid(), id);
  put_file(a, msg, sizeof msg);
  snprintf(b, sizeof b, "new/%d.%s", (int)getpid(), id);
  if (link(a, b) < 0) die(b);
  unlink(a);
  sync_dir("new");
  const char *sub[] = {"mess", "intd", "todo"};
  for (int i = 0; i < 3; i++) {
    snprintf(a, sizeof a, "%s/%s", sub[i], id);
    unlink(a);
  }
}

