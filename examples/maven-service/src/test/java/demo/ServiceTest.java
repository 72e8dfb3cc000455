package demo;

import static org.junit.Assert.assertEquals;

import java.util.Map;
import org.junit.Test;

public class ServiceTest {
  @Test
  public void healthIsDownWithoutADatasource() {
    assertEquals(
        "{\"status\":\"DOWN\",\"db\":\"SPRING_DATASOURCE_URL is not set\"}",
        Service.health(Map.of()));
  }

  @Test
  public void healthIsDownWhenTheDatabaseDoesNotAnswer() {
    String body = Service.health(Map.of("SPRING_DATASOURCE_URL", "jdbc:postgresql://127.0.0.1:1/app"));
    assertEquals(true, body.startsWith("{\"status\":\"DOWN\""));
  }
}
