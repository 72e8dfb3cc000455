package demo;

import com.sun.net.httpserver.HttpServer;
import java.io.InputStream;
import java.net.HttpURLConnection;
import java.net.URL;
import java.nio.charset.StandardCharsets;

/** Plain-JDK tests (no JUnit download needed): exits non-zero on the first failure. */
public final class MainTest {
    private static int failures = 0;

    private static void check(boolean ok, String what) {
        System.out.println((ok ? "ok   " : "FAIL ") + what);
        if (!ok) {
            failures++;
        }
    }

    private static String get(int port, String path, int[] status) throws Exception {
        HttpURLConnection c = (HttpURLConnection) new URL("http://127.0.0.1:" + port + path).openConnection();
        status[0] = c.getResponseCode();
        try (InputStream in = status[0] < 400 ? c.getInputStream() : c.getErrorStream()) {
            return new String(in.readAllBytes(), StandardCharsets.UTF_8).trim();
        }
    }

    public static void main(String[] args) throws Exception {
        check(Main.greeting(null).startsWith("hello world from java-service"), "greeting defaults to world");
        check(Main.greeting("ada").startsWith("hello ada"), "greeting uses the name");
        HttpServer server = Main.start(0);
        int port = server.getAddress().getPort();
        int[] status = new int[1];
        try {
            check(get(port, "/healthz", status).equals("ok") && status[0] == 200, "GET /healthz is 200 ok");
            check(get(port, "/version", status).equals(Main.version()), "GET /version reports the version");
            get(port, "/nope", status);
            check(status[0] == 404, "unknown path is 404");
        } finally {
            server.stop(0);
        }
        if (failures > 0) {
            System.out.println(failures + " test(s) failed");
            System.exit(1);
        }
        System.out.println("all tests passed");
        System.exit(0); // the server's executor threads would keep the JVM alive
    }
}
