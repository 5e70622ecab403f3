#!/usr/bin/env bash
# Compile the plain-Java cropcore and run its JUnit tests with javac + Debian's junit4 (no Gradle, no network
# beyond Debian's packages). Installs default-jdk-headless and junit4 when they are missing.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
core="$here/cropcore"
jars=/usr/share/java/junit4.jar:/usr/share/java/hamcrest-core.jar
if ! command -v javac >/dev/null || [ ! -e /usr/share/java/junit4.jar ] || [ ! -e /usr/share/java/hamcrest-core.jar ]; then
  echo "installing a JDK and JUnit 4 from Debian's packages" >&2
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get install -y -q default-jdk-headless junit4 >/dev/null
fi
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
javac -Xlint:all -Werror -d "$out/main" $(find "$core/src/main/java" -name '*.java')
javac -Xlint:all -Werror -cp "$out/main:$jars" -d "$out/test" $(find "$core/src/test/java" -name '*.java')
cp -r "$core/src/test/resources/." "$out/test/"
mkdir -p "$out/test/models" && cp "$here/../models/"*.tflite "$out/test/models/"  # the card round trip reads them
tests=$(cd "$core/src/test/java" && find . -name '*Test.java' | sed 's|^\./||; s|\.java$||; s|/|.|g')
java -cp "$out/main:$out/test:$jars" org.junit.runner.JUnitCore $tests
